//! The one error type of gatehouse, and the single place where an error becomes an
//! HTTP status. Internals (store failures, I/O) are logged and never shown to clients.

use http::StatusCode;

/// Everything that can go wrong inside gatehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable; names the key, the value (or where it came
    /// from, when the value itself is in the reason) and why.
    #[error("invalid configuration: `{key}`{value}: {reason}")]
    Config {
        key: String,
        /// Pre-formatted: ` = "value"` or ` (from …)`.
        value: String,
        reason: String,
    },
    /// The embedded store failed.
    #[error("store error: {0}")]
    Store(#[from] sled::Error),
    /// The store cannot write now (a full disk, a failing drive); it recovers by itself
    /// once the cause is gone, and health reports it meanwhile.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// A stored record could not be (de)serialised.
    #[error("corrupt record: {0}")]
    Codec(#[from] serde_json::Error),
    /// File system or socket failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent something malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The CSRF token is missing or wrong.
    #[error("the form expired or was not sent from this site; please try again")]
    Csrf,
    /// A user or session that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A value the operator gave is not acceptable (CLI input and the like).
    #[error("{0}")]
    Invalid(String),
    /// The session was ended (revoked, its user disabled) while this request ran.
    #[error("your session has ended; please sign in again")]
    SessionEnded,
    /// Too much work is waiting (e.g. password checks during a login flood).
    #[error("too many sign-in attempts are being checked right now; please try again in a moment")]
    Busy,
    /// Something that should not happen (a panicked worker, a hashing failure).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status an error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Csrf => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::SessionEnded => StatusCode::UNAUTHORIZED,
            Error::Busy | Error::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config { .. }
            | Error::Store(_)
            | Error::Codec(_)
            | Error::Io(_)
            | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text a client may see: its own mistakes verbatim, internals as a generic line.
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() && !matches!(self, Error::Busy) {
            "Something went wrong on our side. Please try again later.".to_string()
        } else {
            self.to_string()
        }
    }

    /// Shorthand for a configuration error.
    pub fn config(
        key: impl Into<String>,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            key: key.into(),
            value: format!(" = {value:?}"),
            reason: reason.into(),
        }
    }
}

/// Result with gatehouse's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
