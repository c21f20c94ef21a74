//! The modules of `src/` form layers: no import circle between top-level modules.
//!
//! Reads every `crate::…` path of `src/` (in `use` lines, also grouped ones like
//! `use crate::{a, b::c}`, and in expressions like `crate::x::f()`), builds the graph
//! of which top-level module refers to which, and fails naming every strongly
//! connected component of more than one module, with the references that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The source without comments and string literals (a path in a doc comment or a
/// message is no dependency).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if text[i..].starts_with("/*") {
            let end = text[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |e| i + 2 + e + 2);
            i = end;
        } else if bytes[i] == b'r'
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            && text[i + 1..].trim_start_matches('#').starts_with('"')
        {
            // A raw string: r"…" or r#"…"#, with as many `#` at the end.
            let hashes = text[i + 1..].len() - text[i + 1..].trim_start_matches('#').len();
            let closing = format!("\"{}", "#".repeat(hashes));
            let open = i + 1 + hashes + 1;
            i = text[open..]
                .find(&closing)
                .map_or(bytes.len(), |e| open + e + closing.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' {
            // A char literal ('x', '\n', '"'); anything else is a lifetime.
            let rest = &text[i + 1..];
            let literal_len = if rest.starts_with('\\') {
                rest[2..].find('\'').map(|e| e + 3)
            } else {
                rest.chars()
                    .next()
                    .filter(|c| rest[c.len_utf8()..].starts_with('\''))
                    .map(|c| c.len_utf8() + 1)
            };
            match literal_len {
                Some(len) => {
                    i += 1 + len;
                    out.push_str("' '");
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The top-level modules a piece of code refers to through `crate::`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        found.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    c if c.is_whitespace() => {}
                    _ => item_start = false,
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Strongly connected components (Tarjan), largest first.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found.sort_by_key(|c| std::cmp::Reverse(c.len()));
    walk.found
}

/// Module → the modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;
/// (from, to) → the files of `from` that refer to `to`.
type Witnesses = BTreeMap<(String, String), BTreeSet<String>>;

/// Top-level module → the top-level modules it refers to, and from which files.
fn module_graph() -> (Graph, Witnesses) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    let mut witnesses = Witnesses::new();
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let entry = graph.entry(top.clone()).or_default();
        for target in referenced_modules(&code) {
            if target != top {
                entry.insert(target.clone());
                witnesses
                    .entry((top.clone(), target))
                    .or_default()
                    .insert(relative.display().to_string());
            }
        }
    }
    (graph, witnesses)
}

#[test]
fn the_top_level_modules_have_no_import_circle() {
    let (graph, witnesses) = module_graph();
    assert!(graph.len() > 10, "read the modules of src/: {graph:?}");
    let found = circles(&graph);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("circle: {}\n", component.join(", ")));
        for from in component {
            for to in &graph[from] {
                if component.contains(to) {
                    let files: Vec<_> = witnesses[&(from.clone(), to.clone())]
                        .iter()
                        .cloned()
                        .collect();
                    report.push_str(&format!("  {from} -> {to}   ({})\n", files.join(", ")));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "import circles between modules:\n{report}"
    );
}

#[test]
fn the_circle_finder_finds_a_planted_circle_and_reads_grouped_imports() {
    let code = code_only(
        "use crate::{a, b::{c, d}, e::f};\n// crate::commented\nlet s = \"crate::quoted\";\n\
         let q = '\"'; let raw = r#\"crate::raw \" quote\"#; fn f<'a>(x: &'a str) {}\ncrate::g::h();",
    );
    let found: Vec<_> = referenced_modules(&code).into_iter().collect();
    assert_eq!(found, ["a", "b", "e", "g"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
