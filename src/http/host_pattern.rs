//! Host patterns of the configuration (`*`, `*.example.com`, an exact name): checked
//! and normalised the way request hosts are, and matched against them. One place for
//! the configuration, the rules and the redirect checks alike.

use crate::error::{Error, Result};

/// `pattern` is `*`, `*.example.com` (any subdomain) or an exact host name.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// A host pattern (`*`, `*.example.com` or an exact name), normalised the way request
/// hosts are ([`super::target::normalise_host`]), so both sides compare alike.
pub fn check_host_pattern(key: &str, value: &str) -> Result<String> {
    if value == "*" {
        return Ok(value.to_string());
    }
    let (wildcard, body) = match value.strip_prefix("*.") {
        Some(body) => ("*.", body),
        None => ("", value),
    };
    super::target::normalise_host(body)
        .map(|host| format!("{wildcard}{host}"))
        .map_err(|e| {
            Error::config(
                key,
                value,
                format!("expected a host name, `*.domain` or `*` ({e})"),
            )
        })
}
