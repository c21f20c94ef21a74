//! A stable-toolchain fuzzer for everything gatehouse parses from clients: the request
//! target canonicaliser, `Host`-style authorities, forward-auth headers, `X-Forwarded-For`,
//! cookies, `rd` and forms. Each target gets N inputs (default 10 million): random
//! mutations of a hostile seed corpus and random strings over an alphabet of the bytes
//! that matter to it. A panic is caught and counted as a crash; every accepted result is
//! also checked against the target's invariants (a violation is a failure too).
//!
//! `cargo run --release --example fuzz_inputs -- [N] [SEED]`; prints one line per target
//! and exits non-zero on any crash or violation. Not part of `cargo test`: see README.

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use gatehouse::forward_auth::{target_of, Kind};
use gatehouse::http::redirect::safe_redirect;
use gatehouse::http::target::{canonical_target, parse_authority};
use gatehouse::http::{client_ip, Request};
use http::{HeaderMap, HeaderValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEEDS: &[&str] = &[
    "/static/../admin",
    "/static/%2e%2e/admin",
    "/static/..%2fadmin",
    "/static/..;/admin",
    "/%61dmin?x.css",
    "//admin",
    "/a/./b/../c//d/",
    "/caf%c3%a9/%7Euser",
    "/%252e%252e/",
    "http://panel.example.com/admin",
    "panel.example.test\\static\\x#",
    "PANEL.example.test.:8443",
    "[::1]:8080",
    "user@evil.com",
    "gatehouse_session=abc.def; theme=dark",
    "https://app.example.com/path?q=1#frag",
    "javascript:alert(1)",
    "/\\evil.com",
    "csrf=abc&username=ann&password=x%20y&rd=%2Fhome",
    "203.0.113.5, 10.0.0.1",
    "unknown, 2001:db8::1",
];

const ALPHABET: &[u8] =
    b"/.%25feE2aAcC0;?#\\:@[]-_~ &=+,xyz9\t\r\n\x00\x7f\xc3\xa9PANEL.example/admin..";

fn mutate(rng: &mut StdRng, input: &str) -> String {
    let mut bytes = input.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..6) {
        let pos = if bytes.is_empty() {
            0
        } else {
            rng.gen_range(0..=bytes.len())
        };
        match rng.gen_range(0..5) {
            0 | 1 => bytes.insert(pos, ALPHABET[rng.gen_range(0..ALPHABET.len())]),
            2 if pos < bytes.len() => {
                bytes.remove(pos);
            }
            3 => {
                let seed = SEEDS[rng.gen_range(0..SEEDS.len())].as_bytes();
                let start = rng.gen_range(0..seed.len());
                let end = rng.gen_range(start..=seed.len());
                bytes.splice(pos..pos, seed[start..end].iter().copied());
            }
            _ if pos < bytes.len() => bytes[pos] = ALPHABET[rng.gen_range(0..ALPHABET.len())],
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_input(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.7) {
        let seed = SEEDS[rng.gen_range(0..SEEDS.len())];
        mutate(rng, seed)
    } else {
        let len = rng.gen_range(0..40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

struct Outcome {
    accepted: u64,
    crashes: u64,
    violations: Vec<String>,
}

fn run(
    name: &str,
    n: u64,
    seed: u64,
    mut one: impl FnMut(&mut StdRng) -> Result<bool, String>,
) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcome = Outcome {
        accepted: 0,
        crashes: 0,
        violations: Vec::new(),
    };
    let start = Instant::now();
    for _ in 0..n {
        match catch_unwind(AssertUnwindSafe(|| one(&mut rng))) {
            Ok(Ok(true)) => outcome.accepted += 1,
            Ok(Ok(false)) => {}
            Ok(Err(v)) => {
                if outcome.violations.len() < 5 {
                    outcome.violations.push(v);
                }
            }
            Err(_) => outcome.crashes += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name}: {n} inputs, {} accepted, {} crashes, {} invariant violations, {:.1} s ({:.0} inputs/s)",
        outcome.accepted,
        outcome.crashes,
        outcome.violations.len(),
        secs,
        n as f64 / secs
    );
    for v in &outcome.violations {
        println!("  violation: {v}");
    }
    outcome.crashes == 0 && outcome.violations.is_empty()
}

fn request_with(headers: HeaderMap) -> Request {
    Request::auth_request(headers, None)
}

fn header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    std::panic::set_hook(Box::new(|_| {}));
    let mut ok = true;

    ok &= run("request target", n, seed, |rng| {
        let raw = random_input(rng);
        let Ok(t) = canonical_target(&raw) else {
            return Ok(false);
        };
        let path = t.path();
        let bad = !path.starts_with('/')
            || !path.is_ascii()
            || path.contains("//")
            || path.split('/').any(|s| s == "." || s == "..")
            || ["%2f", "%2F", "%5c", "%5C", "%00", "\\"]
                .iter()
                .any(|x| path.contains(x));
        let again = canonical_target(&t.path_and_query()).map(|t2| t2 == t);
        if bad || again != Ok(true) {
            return Err(format!("{raw:?} -> {path:?}"));
        }
        Ok(true)
    });

    ok &= run("authority", n, seed + 1, |rng| {
        let raw = random_input(rng);
        let Ok(a) = parse_authority(&raw) else {
            return Ok(false);
        };
        let host = a.host();
        let bad = host.ends_with('.')
            || host.bytes().any(|b| b.is_ascii_uppercase())
            || host.contains(['\\', '#', '?', '/', '@', ' ', '%'])
            || parse_authority(&a.to_string()).as_ref() != Ok(&a);
        if bad {
            return Err(format!("{raw:?} -> {a}"));
        }
        Ok(true)
    });

    ok &= run("forward-auth headers", n, seed + 2, |rng| {
        let mut headers = HeaderMap::new();
        let kind = if rng.gen_bool(0.5) {
            Kind::AuthRequest
        } else {
            Kind::ForwardAuth
        };
        let url = format!(
            "{}://{}{}",
            ["http", "https", "HTTPS", "ftp", ""][rng.gen_range(0..5)],
            random_input(rng),
            random_input(rng)
        );
        for (name, value) in [
            ("x-original-url", url),
            ("x-forwarded-host", random_input(rng)),
            ("x-forwarded-uri", random_input(rng)),
            (
                "x-forwarded-proto",
                ["http", "https", "gopher"][rng.gen_range(0..3)].into(),
            ),
            (
                "x-forwarded-method",
                ["GET", "post", "G E T", ""][rng.gen_range(0..4)].into(),
            ),
        ] {
            if rng.gen_bool(0.8) {
                if let Some(v) = header(&value) {
                    headers.append(name, v);
                }
            }
            if rng.gen_bool(0.05) {
                if let Some(v) = header(&value) {
                    headers.append(name, v);
                }
            }
        }
        let Ok(t) = target_of(&headers, kind) else {
            return Ok(false);
        };
        if !t.url().starts_with("http")
            || t.authority.host().ends_with('.')
            || !t.target.path().starts_with('/')
        {
            return Err(format!("{t:?}"));
        }
        Ok(true)
    });

    let trusted = vec![
        "127.0.0.0/8".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
    ];
    ok &= run("x-forwarded-for", n, seed + 3, |rng| {
        let mut headers = HeaderMap::new();
        let mut mentioned = Vec::new();
        for _ in 0..rng.gen_range(0..4) {
            let hops: Vec<String> = (0..rng.gen_range(0..4))
                .map(|_| match rng.gen_range(0..4) {
                    0 => format!("10.0.0.{}", rng.gen_range(0..255)),
                    1 => format!("203.0.113.{}", rng.gen_range(0..255)),
                    2 => "2001:db8::7".to_string(),
                    _ => random_input(rng),
                })
                .collect();
            let line = hops.join(", ");
            // A hop drawn from the seeds may hold commas itself: split as a reader would.
            mentioned.extend(
                line.split(',')
                    .filter_map(|h| h.trim().parse::<IpAddr>().ok()),
            );
            if let Some(v) = header(&line) {
                headers.append("x-forwarded-for", v);
            }
        }
        let peer: IpAddr = if rng.gen_bool(0.5) {
            "127.0.0.1".parse().unwrap()
        } else {
            "198.51.100.1".parse().unwrap()
        };
        let ip = client_ip(Some(peer), &headers, &trusted);
        match ip {
            Some(ip) if ip == peer || mentioned.contains(&ip) => {}
            other => return Err(format!("{headers:?} -> {other:?}")),
        }
        if peer.to_string() == "198.51.100.1" && ip != Some(peer) {
            return Err(format!("an untrusted peer was overridden: {headers:?}"));
        }
        Ok(true)
    });

    ok &= run("cookies", n, seed + 4, |rng| {
        let header = random_input(rng);
        match gatehouse::auth::session::cookie_value(&header, "gatehouse_session") {
            Some(v) if !header.contains(v) => Err(format!("{header:?} -> {v:?}")),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    });

    let domains = vec!["example.com".to_string(), "*.example.com".to_string()];
    ok &= run("rd", n, seed + 5, |rng| {
        let rd = random_input(rng);
        let Some(target) = safe_redirect(&rd, &domains) else {
            return Ok(false);
        };
        if target.starts_with('/') {
            if target.starts_with("//") || target.contains('\\') {
                return Err(format!("{rd:?} -> {target:?}"));
            }
            return Ok(true);
        }
        let url = url::Url::parse(&target).map_err(|e| format!("{rd:?}: {e}"))?;
        let host = url.host_str().unwrap_or("");
        if !(host == "example.com" || host.ends_with(".example.com")) {
            return Err(format!("{rd:?} -> {target:?}"));
        }
        Ok(true)
    });

    ok &= run("forms", n, seed + 6, |rng| {
        let mut req = request_with(HeaderMap::new());
        req.body = random_input(rng).into_bytes().into();
        req.query = Some(random_input(rng));
        let form = req.form();
        let _ = req.query_param("rd");
        Ok(form.get("csrf").is_some())
    });

    if !ok {
        std::process::exit(1);
    }
}
