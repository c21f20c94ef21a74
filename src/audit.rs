//! The audit log: one structured line per security event, under the tracing target
//! `audit` so operators can route it apart from the rest (`RUST_LOG=audit=info`).
//!
//! Every value is recorded as a string, which both log formats quote and escape
//! (`user="a\nevent=login"`): a value a client chose (a username, a user agent) can
//! never start a new line or fake a key.
//!
//! The events about a user's own security are also kept for them to see
//! ([`crate::activity`]).

/// Writes one audit line: `event` names what happened; the rest are its facts.
#[macro_export]
macro_rules! audit {
    ($event:expr $(, $key:ident = $value:expr)* $(,)?) => {{
        tracing::info!(
            target: "audit",
            event = $event
            $(, $key = $crate::audit::text(&$value).as_str())*
        );
        // The events about a user's security also go to their activity list.
        $crate::activity::note(
            &$crate::audit::text(&$event),
            &[$((stringify!($key), $crate::audit::text(&$value))),*],
        );
    }};
}

/// A value's text, for recording as a quoted string.
pub fn text(value: &impl std::fmt::Display) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_with_a_newline_cannot_forge_an_audit_line_or_key() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let user = "eve\n2026-01-01T00:00:00Z INFO audit: event=\"login\" user=\"root\"";
            crate::audit!("login_failed", user = user, ip = "192.0.2.1 event=ban");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(r#"user="eve\n2026"#), "{text}");
        assert!(text.contains(r#"ip="192.0.2.1 event=ban""#), "{text}");
    }
}
