//! Differential-test driver for `src/http/target.rs`.
//!
//! Reads one request target per line on stdin, hex-encoded so any byte can be sent,
//! and prints `OK <canonical path>` or `ERR` per line. Bytes that are not UTF-8 are
//! `ERR` (the gateway only ever sees targets as `&str`). Driven by `canon_diff.py`:
//!
//! ```text
//! rustc --edition 2021 -O fuzz/canon_diff.rs -o /tmp/canon_diff
//! python3 fuzz/canon_diff.py 200000
//! ```

#[allow(dead_code)]
#[path = "../src/http/target.rs"]
mod target;

use std::io::{self, BufRead, BufWriter, Write};

fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let mut out = BufWriter::new(io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        let raw = decode_hex(line.trim()).and_then(|bytes| String::from_utf8(bytes).ok());
        match raw.as_deref().map(target::canonical_target) {
            Some(Ok(target)) => writeln!(out, "OK {}", target.path())?,
            _ => writeln!(out, "ERR")?,
        }
    }
    out.flush()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}
