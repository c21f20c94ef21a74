//! The forward-auth check's own cost, without the network: `decide` (cookie HMAC, the
//! session and user reads, the rules) and the whole `forward_auth::answer` (target
//! parsing, identity headers) on a warm sled store with 10,000 sessions, as a running
//! gateway has it. `cargo bench --bench check`; `bench/run.sh` prints the same figures
//! beside the HTTP ones, and their instruction counts under callgrind when valgrind is
//! installed (repeatable where wall-clock times on a shared machine are not).

use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use http::{HeaderMap, HeaderValue};

use gatehouse::auth::gate::{decide, Decision};
use gatehouse::basics::now;
use gatehouse::forward_auth::{answer, Kind};
use gatehouse::http::Request;
use gatehouse::policy::RequestFacts;
use gatehouse::state::AppState;

/// A gateway on a sled store in a temporary directory, with `sessions` two-factor
/// sessions; returns the state, one session's `Cookie` header and the directory.
fn warm_gateway(
    runtime: &tokio::runtime::Runtime,
    sessions: usize,
) -> (Arc<AppState>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = gatehouse::bench_seed::bench_config(dir.path());
    runtime.block_on(async {
        let cookies = gatehouse::bench_seed::seed_state(config, 100, sessions)
            .await
            .expect("seeding the store");
        let (state, cookies) = cookies;
        let header = format!(
            "{}={}",
            state.sessions.config().cookie_name,
            cookies[cookies.len() / 2]
        );
        (state, header, dir)
    })
}

fn auth_request(cookie: &str) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-original-url",
        HeaderValue::from_static("http://panel.bench.test/dashboard?tab=1"),
    );
    headers.insert("x-original-method", HeaderValue::from_static("GET"));
    headers.insert("cookie", HeaderValue::from_str(cookie).expect("a cookie"));
    Request::auth_request(headers, Some([127, 0, 0, 1].into()))
}

fn check(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (state, cookie, _dir) = warm_gateway(&runtime, 10_000);
    let facts = RequestFacts {
        host: "panel.bench.test",
        path: "/dashboard",
        query: Some("tab=1"),
        method: "GET",
        client_ip: Some([127, 0, 0, 1].into()),
    };
    let decision = |now| {
        runtime.block_on(decide(
            &state.sessions,
            &state.config.access,
            &facts,
            Some(&cookie),
            false,
            now,
        ))
    };
    assert!(matches!(decision(now()), Ok(Decision::Allow(Some(_)))));
    c.bench_function("decide, valid two-factor session", |b| {
        b.iter(|| decision(now()))
    });
    c.bench_function("decide, no cookie", |b| {
        b.iter(|| {
            runtime.block_on(decide(
                &state.sessions,
                &state.config.access,
                &facts,
                None,
                false,
                now(),
            ))
        })
    });
    let request = auth_request(&cookie);
    assert_eq!(
        runtime
            .block_on(answer(&state, (&request).into(), Kind::AuthRequest))
            .status(),
        200
    );
    c.bench_function("forward-auth answer, valid session", |b| {
        b.iter(|| runtime.block_on(answer(&state, (&request).into(), Kind::AuthRequest)))
    });
}

criterion_group!(benches, check);

/// With `CHECK_ITERATIONS=N`: N forward-auth answers and nothing else, for
/// `valgrind --tool=callgrind`.
fn count_only(iterations: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (state, cookie, _dir) = warm_gateway(&runtime, 1_000);
    let request = auth_request(&cookie);
    for _ in 0..iterations {
        assert_eq!(one_answer(&runtime, &state, &request), 200);
    }
}

/// One forward-auth answer: what callgrind counts (`--toggle-collect='*one_answer*'`),
/// so that the set-up and the store's background threads are left out.
#[inline(never)]
fn one_answer(runtime: &tokio::runtime::Runtime, state: &AppState, request: &Request) -> u16 {
    runtime
        .block_on(answer(state, request.into(), Kind::AuthRequest))
        .status()
        .as_u16()
}

fn main() {
    match std::env::var("CHECK_ITERATIONS") {
        Ok(n) => count_only(n.parse().expect("CHECK_ITERATIONS is a number")),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
