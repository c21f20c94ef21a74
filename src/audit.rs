//! The audit log: one structured line per security event, under the tracing target
//! `audit` so operators can route it apart from the rest (`RUST_LOG=audit=info`).

/// Writes one audit line: `event` names what happened; the rest are its facts.
#[macro_export]
macro_rules! audit {
    ($event:expr $(, $key:ident = $value:expr)* $(,)?) => {
        tracing::info!(target: "audit", event = $event $(, $key = %$value)*)
    };
}
