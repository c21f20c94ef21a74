//! `rd` validation: where a browser may be sent after login.
//!
//! Accepted: a same-site relative path (`/x`, not `//x` nor `/\x`), or an absolute
//! `http(s)` URL without credentials whose host is a protected domain. Everything else
//! (other hosts, scheme tricks, backslashes, control characters, encoded separators in
//! the authority) is refused, and the caller falls back to its safe default.

use crate::http::host_pattern::host_matches;

/// The redirect target to use, or `None` when `rd` must be ignored.
pub fn safe_redirect(rd: &str, protected_domains: &[String]) -> Option<String> {
    if rd.is_empty() || rd.len() > 4096 {
        return None;
    }
    // Browsers strip tabs and newlines and treat `\` as `/`: refuse them outright.
    if rd
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    if let Some(rest) = rd.strip_prefix('/') {
        if rest.starts_with('/') {
            return None;
        }
        return Some(rd.to_string());
    }
    let url = url::Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    // The raw text must spell the authority plainly: `https://` then the host.
    let after_scheme = &rd[url.scheme().len()..];
    if !after_scheme.starts_with("://") {
        return None;
    }
    let authority = after_scheme[3..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if authority.contains('%') || authority.contains('@') {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    protected_domains
        .iter()
        .any(|p| host_matches(p, &host))
        .then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec![
            "example.com".into(),
            "*.example.com".into(),
            "panel.other.org".into(),
        ]
    }

    #[test]
    fn protected_targets_are_accepted() {
        for ok in [
            "https://example.com/",
            "https://app.example.com/path?q=1#frag",
            "http://a.b.example.com:8443/x",
            "https://panel.other.org/",
            "HTTPS://APP.EXAMPLE.COM/X",
            "/dashboard?tab=2",
            "/",
        ] {
            assert!(
                safe_redirect(ok, &domains()).is_some(),
                "{ok} should be accepted"
            );
        }
    }

    #[test]
    fn hostile_targets_fall_back() {
        let hostile = [
            "https://evil.com/",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https:\\\\evil.com",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://evil.com#.example.com",
            "https://evil.com?.example.com",
            "https://example.com.evil.com/",
            "https://evilexample.com/",
            "https://user:pw@app.example.com/",
            "https://app.example.com@evil.com/",
            "https://evil.com%2f@app.example.com/",
            "https://evil.com%2F.example.com/",
            "https:evil.com",
            "https:/evil.com",
            "http://app.example.com\t.evil.com/",
            "/\t/evil.com",
            " //evil.com",
            "/\n/evil.com",
            "%2F%2Fevil.com",
            "ftp://app.example.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://ехample.com/",
            "",
        ];
        assert!(hostile.len() >= 20);
        for bad in hostile {
            assert_eq!(
                safe_redirect(bad, &domains()),
                None,
                "{bad:?} must be refused"
            );
        }
    }
}
