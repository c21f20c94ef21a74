//! Named points inside multi-record changes where a debug build can be made to stop as
//! if killed, so tests can prove what a crash there leaves behind.

/// Aborts the process (no unwinding, nothing flushed: like kill -9) when the
/// `GH_TEST_CRASH_POINT` environment variable names this point. Debug builds only;
/// release builds ignore it.
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    {
        static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let armed = ARMED.get_or_init(|| std::env::var("GH_TEST_CRASH_POINT").ok());
        if armed.as_deref() == Some(name) {
            eprintln!("gatehouse: stopping at crash point {name}");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
