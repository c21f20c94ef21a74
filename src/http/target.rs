//! Canonical request targets and authorities: the one parse the security gate and the
//! panel share.
//!
//! The gateway parses the request target exactly once into a [`Target`]. Access rules
//! match [`Target::path`], and in proxy mode the panel receives
//! [`Target::path_and_query`], so the gate always judges exactly the request the panel
//! will serve. Anything a downstream server could read in more than one way (encoded
//! separators, double encoding, dot segments with parameters, backslashes, control
//! characters, fragments, escapes above the root) is refused with a [`TargetError`];
//! the caller answers `400 Bad Request`.
//!
//! The canonical path is plain ASCII: escapes of unreserved characters are decoded,
//! every other escape is kept with upper-case hex digits, bytes that may not appear
//! unencoded in a path are percent-encoded, repeated `/` are merged and `.` / `..`
//! segments are resolved (a trailing `/` is kept). The query is kept byte for byte.
//!
//! [`parse_authority`] and [`normalise_host`] do the same for `Host`,
//! `X-Forwarded-Host`, absolute-URL authorities and configured host names: lower-case,
//! one trailing dot dropped, strict label syntax, bracketed IPv6 in compressed form.

use std::fmt;
use std::net::Ipv6Addr;

/// Longest request target accepted, in bytes.
pub const MAX_TARGET_LEN: usize = 8192;

/// Longest `host[:port]` accepted, in bytes.
pub const MAX_AUTHORITY_LEN: usize = 255;

/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A request target in canonical form: path (always starts with '/') and optional raw query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    path: String,
    query: Option<String>,
}

impl Target {
    /// The canonical path: ASCII, starts with `/`, no `//`, no dot segments.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query exactly as received (without the `?`), if the target had one.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Whether `raw` (as received) spells exactly this target, so it can be forwarded
    /// unchanged.
    #[must_use]
    pub fn is_spelled(&self, raw: &str) -> bool {
        match (&self.query, raw.split_once('?')) {
            (Some(q), Some((p, rq))) => p == self.path && rq == q,
            (None, None) => raw == self.path,
            _ => false,
        }
    }

    /// path, plus "?query" when there is one (what is forwarded to the panel).
    #[must_use]
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{}", self.path, query),
            None => self.path.clone(),
        }
    }
}

/// Why a request target was refused. Every variant means `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// Empty, or not starting with `/` (absolute-form, authority-form, `*`, relative).
    NotOriginForm,
    /// A `#` anywhere: browsers never send fragments.
    Fragment,
    /// An ASCII control character or a space, in the path or the query.
    ControlOrSpace,
    /// A raw `\` in the path.
    Backslash,
    /// `%2F` or `%5C` in the path.
    EncodedSeparator,
    /// `%00` in the path.
    EncodedNul,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// `%25` followed by two hex digits: a double-decoding server would read more.
    DoubleEncoding,
    /// A `..` segment with nothing left to remove.
    AboveRoot,
    /// A `;` (raw or `%3B`) in the path: servers such as Tomcat strip `;parameters`
    /// before routing (`/;/admin` is `/admin` there), others keep them.
    PathParameters,
    /// Longer than [`MAX_TARGET_LEN`].
    TooLong,
    /// A `.` or `..` segment where the panel may not resolve it the way the rules did
    /// (forward-auth: the front proxy forwards the raw target; see
    /// [`canonical_target_without_dots`]).
    DotSegment,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self {
            Self::NotOriginForm => "the request target is not an origin-form path",
            Self::Fragment => "a '#' fragment in the request target",
            Self::ControlOrSpace => "a control character or space in the request target",
            Self::Backslash => "a '\\' in the path",
            Self::EncodedSeparator => "an encoded '/' or '\\' in the path",
            Self::EncodedNul => "an encoded NUL in the path",
            Self::InvalidEscape => "a '%' not followed by two hex digits",
            Self::DoubleEncoding => "a double-encoded escape in the path",
            Self::AboveRoot => "a '..' segment above the root",
            Self::PathParameters => "a ';' path parameter, which servers read differently",
            Self::TooLong => "the request target is too long",
            Self::DotSegment => "a '.' or '..' segment the panel may read differently",
        };
        f.write_str(reason)
    }
}

impl std::error::Error for TargetError {}

/// Like [`canonical_target`], and also refuses any `.` or `..` segment (plain or
/// percent-encoded). For forward-auth, where the front proxy forwards the raw target:
/// a panel that does not resolve dot segments (Flask routes `/admin/../static/x` to
/// `/admin/<path>`) would serve another path than the canonical one the rules judged.
/// Browsers resolve dot segments before sending, so real users never meet this.
///
/// # Errors
///
/// As [`canonical_target`], plus [`TargetError::DotSegment`].
pub fn canonical_target_without_dots(raw: &str) -> Result<Target, TargetError> {
    let target = canonical_target(raw)?;
    let path = raw.split('?').next().unwrap_or("");
    // A segment of one or two dots, each plain or `%2e`, read without allocating.
    let is_dot = |s: &[u8]| s == b"." || s.eq_ignore_ascii_case(b"%2e");
    let dotted = path.split('/').any(|segment| {
        let s = segment.as_bytes();
        (1..=s.len()).any(|cut| {
            let (a, b) = s.split_at(cut);
            is_dot(a) && (b.is_empty() || is_dot(b))
        })
    });
    if dotted {
        return Err(TargetError::DotSegment);
    }
    Ok(target)
}

/// Parses an origin-form target (`path[?query]` as received) into its canonical form.
///
/// # Errors
///
/// A [`TargetError`] when the target is not origin-form, too long, or ambiguous in
/// any way; the caller answers `400`.
pub fn canonical_target(raw: &str) -> Result<Target, TargetError> {
    if raw.len() > MAX_TARGET_LEN {
        return Err(TargetError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    for b in raw.bytes() {
        if b == b'#' {
            return Err(TargetError::Fragment);
        }
        if b.is_ascii_control() || b == b' ' {
            return Err(TargetError::ControlOrSpace);
        }
    }
    let (raw_path, query) = match raw.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (raw, None),
    };
    if raw_path.contains(';') || raw_path.to_ascii_lowercase().contains("%3b") {
        return Err(TargetError::PathParameters);
    }
    let escaped = normalise_escapes(raw_path)?;
    let path = resolve_segments(&escaped)?;
    Ok(Target { path, query })
}

/// Checks and normalises percent escapes and encodes bytes not allowed raw in a path.
fn normalise_escapes(path: &str) -> Result<String, TargetError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => return Err(TargetError::Backslash),
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                let value = match (high, low) {
                    (Some(high), Some(low)) => (high << 4) | low,
                    _ => return Err(TargetError::InvalidEscape),
                };
                match value {
                    b'/' | b'\\' => return Err(TargetError::EncodedSeparator),
                    0 => return Err(TargetError::EncodedNul),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => push_escape(&mut out, v),
                }
                i += 3;
            }
            b if is_path_char(b) => {
                out.push(char::from(b));
                i += 1;
            }
            b => {
                push_escape(&mut out, b);
                i += 1;
            }
        }
    }
    // Checked after decoding, so `%25%32%66` is caught as well as `%252f`.
    if has_double_encoding(&out) {
        return Err(TargetError::DoubleEncoding);
    }
    Ok(out)
}

/// Merges repeated `/` and resolves `.` and `..` segments; keeps a trailing `/`.
fn resolve_segments(path: &str) -> Result<String, TargetError> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in rest.split('/') {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                if stack.pop().is_none() {
                    return Err(TargetError::AboveRoot);
                }
                trailing_slash = true;
            }
            other => {
                if is_dot_segment_with_params(other) {
                    return Err(TargetError::PathParameters);
                }
                stack.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// `.;x`, `..;x`, and (being strict) `..%3B` too: servers disagree on what they mean.
fn is_dot_segment_with_params(segment: &str) -> bool {
    let cut = [segment.find(';'), segment.find("%3B")]
        .into_iter()
        .flatten()
        .min();
    match cut {
        Some(end) => matches!(segment.get(..end), Some("." | "..")),
        None => false,
    }
}

fn has_double_encoding(escaped: &str) -> bool {
    escaped.as_bytes().windows(5).any(|w| {
        w.starts_with(b"%25")
            && w.get(3).is_some_and(u8::is_ascii_hexdigit)
            && w.get(4).is_some_and(u8::is_ascii_hexdigit)
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(hex_digit_upper(b >> 4));
    out.push(hex_digit_upper(b & 0x0f));
}

/// The upper-case hex digit for a nibble (`0..=15`).
fn hex_digit_upper(nibble: u8) -> char {
    if nibble < 10 {
        char::from(b'0' + nibble)
    } else {
        char::from(b'A' + (nibble - 10))
    }
}

/// RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters allowed unencoded in a path (besides `%` of a valid escape).
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// A normalised `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// Lower-case host name without trailing dot, or a bracketed IPv6 literal.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if one was given.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{}", self.host, port),
            None => f.write_str(&self.host),
        }
    }
}

/// Why a host or authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// Nothing, or no host before the port.
    Empty,
    /// Contains `@`.
    Userinfo,
    /// A character that has no place in a host name.
    BadCharacter,
    /// A port that is empty, not 1-5 digits, 0 or above 65535 (or any port where
    /// none is allowed).
    BadPort,
    /// An empty label, a label over 63 characters, or one starting or ending in `-`.
    BadLabel,
    /// Longer than [`MAX_AUTHORITY_LEN`].
    TooLong,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self {
            Self::Empty => "an empty host",
            Self::Userinfo => "credentials ('@') in the host",
            Self::BadCharacter => "a character not allowed in a host name",
            Self::BadPort => "an invalid or unexpected port",
            Self::BadLabel => "an empty, over-long or badly hyphenated host label",
            Self::TooLong => "the host is too long",
        };
        f.write_str(reason)
    }
}

impl std::error::Error for HostError {}

/// Parses an exact `host[:port]` as sent in Host / X-Forwarded-Host / an absolute URL's authority.
///
/// # Errors
///
/// A [`HostError`] when the authority is empty, too long, carries credentials, or
/// has a bad character, label or port.
pub fn parse_authority(raw: &str) -> Result<Authority, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if raw.len() > MAX_AUTHORITY_LEN {
        return Err(HostError::TooLong);
    }
    if raw.contains('@') {
        return Err(HostError::Userinfo);
    }
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']');
    if !raw.bytes().all(allowed) {
        return Err(HostError::BadCharacter);
    }
    let (host_part, port_part) = split_host_port(raw)?;
    let host = if host_part.starts_with('[') {
        normalise_ipv6(host_part)?
    } else {
        normalise_name(host_part)?
    };
    let port = port_part.map(parse_port).transpose()?;
    Ok(Authority { host, port })
}

/// Host name only (no port allowed), same normalisation; used for config patterns too.
///
/// # Errors
///
/// As [`parse_authority`], and [`HostError::BadPort`] for any port.
pub fn normalise_host(raw: &str) -> Result<String, HostError> {
    let authority = parse_authority(raw)?;
    if authority.port.is_some() {
        return Err(HostError::BadPort);
    }
    Ok(authority.host)
}

/// Splits at the port colon: after `]` for IPv6 literals, else the last `:`.
fn split_host_port(raw: &str) -> Result<(&str, Option<&str>), HostError> {
    if raw.starts_with('[') {
        let close = raw.find(']').ok_or(HostError::BadCharacter)?;
        let (host, rest) = raw.split_at(close + 1);
        if rest.is_empty() {
            return Ok((host, None));
        }
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None => Err(HostError::BadCharacter),
        };
    }
    if raw.contains(['[', ']']) {
        return Err(HostError::BadCharacter);
    }
    match raw.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(HostError::BadCharacter),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((raw, None)),
    }
}

/// `[addr]` validated by the standard parser and re-printed in compressed lower case.
fn normalise_ipv6(bracketed: &str) -> Result<String, HostError> {
    let inner = bracketed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(HostError::BadCharacter)?;
    let addr: Ipv6Addr = inner.parse().map_err(|_| HostError::BadCharacter)?;
    Ok(format!("[{addr}]"))
}

fn normalise_name(name: &str) -> Result<String, HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.contains(['[', ']', ':']) {
        return Err(HostError::BadCharacter);
    }
    let lower = name.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if trimmed.is_empty() {
        return Err(HostError::BadLabel);
    }
    for label in trimmed.split('.') {
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(HostError::BadLabel);
        }
    }
    Ok(trimmed.to_string())
}

fn parse_port(digits: &str) -> Result<u16, HostError> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match digits.parse::<u32>() {
        Ok(value) if (1..=65535).contains(&value) => {
            u16::try_from(value).map_err(|_| HostError::BadPort)
        }
        _ => Err(HostError::BadPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use HostError as H;
    use TargetError as T;

    /// (raw target, expected `path_and_query` or error).
    const TARGET_CASES: &[(&str, Result<&str, TargetError>)] = &[
        // Traversal into a protected area, in every spelling.
        ("/static/../admin", Ok("/admin")),
        ("/static/%2e%2e/admin", Ok("/admin")),
        ("/static/%2E%2E/admin", Ok("/admin")),
        ("/static/.%2e/admin", Ok("/admin")),
        ("/static/%2e./admin", Ok("/admin")),
        ("/static/..%2fadmin", Err(T::EncodedSeparator)),
        ("/static/..%2Fadmin", Err(T::EncodedSeparator)),
        ("/static/..%5cadmin", Err(T::EncodedSeparator)),
        ("/static/..%5Cadmin", Err(T::EncodedSeparator)),
        ("/static\\..\\admin", Err(T::Backslash)),
        ("/admin/../static/x", Ok("/static/x")),
        ("/static/x/../../admin", Ok("/admin")),
        ("/a/.%2e/b", Ok("/b")),
        ("/a/%2e./b", Ok("/b")),
        ("/a/%2E%2e/b", Ok("/b")),
        ("/a/%2e/b", Ok("/a/b")),
        ("/%2E/admin", Ok("/admin")),
        ("/./admin", Ok("/admin")),
        ("/././admin/./", Ok("/admin/")),
        // Case and escape tricks on the protected prefix.
        ("/%61dmin", Ok("/admin")),
        ("/%61%64%6d%69%6e", Ok("/admin")),
        ("/%41DMIN", Ok("/ADMIN")),
        ("/A/%7Euser", Ok("/A/~user")),
        ("/A/%7euser", Ok("/A/~user")),
        ("/%2d%5f%2e%7e", Ok("/-_.~")),
        ("/a%3bb", Err(T::PathParameters)),
        ("/a%3Bb", Err(T::PathParameters)),
        ("/a%3fb", Ok("/a%3Fb")),
        ("/a%23b", Ok("/a%23b")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%0d%0ab", Ok("/a%0D%0Ab")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/caf%C3%A9", Ok("/caf%C3%A9")),
        ("/caf\u{e9}", Ok("/caf%C3%A9")),
        ("/\u{65e5}\u{672c}", Ok("/%E6%97%A5%E6%9C%AC")),
        ("/a\"<>^`{|}[]", Ok("/a%22%3C%3E%5E%60%7B%7C%7D%5B%5D")),
        ("/!$&'()*+,=:@-._~", Ok("/!$&'()*+,=:@-._~")),
        // Separators.
        ("//admin", Ok("/admin")),
        ("///admin//x///", Ok("/admin/x/")),
        ("/%2fadmin", Err(T::EncodedSeparator)),
        ("/%2Fadmin", Err(T::EncodedSeparator)),
        ("/%5cadmin", Err(T::EncodedSeparator)),
        ("/adm\\in", Err(T::Backslash)),
        ("/\\admin", Err(T::Backslash)),
        // Path parameters: Tomcat strips them before routing (`/;/admin` is `/admin`).
        ("/static/..;/admin", Err(T::PathParameters)),
        ("/static/..;jsessionid=x/admin", Err(T::PathParameters)),
        ("/static/.;/admin", Err(T::PathParameters)),
        ("/static/%2e%2e;/admin", Err(T::PathParameters)),
        ("/static/..%3b/admin", Err(T::PathParameters)),
        ("/static/;/admin", Err(T::PathParameters)),
        ("/;/admin", Err(T::PathParameters)),
        ("/admin;x.css", Err(T::PathParameters)),
        ("/admin;jsessionid=1", Err(T::PathParameters)),
        ("/static/x;..", Err(T::PathParameters)),
        ("/static/...;/admin", Err(T::PathParameters)),
        ("/a%3Bb/c", Err(T::PathParameters)),
        ("/a;b/c", Err(T::PathParameters)),
        ("/a?x=1;y=2", Ok("/a?x=1;y=2")),
        // Above the root.
        ("/..", Err(T::AboveRoot)),
        ("/../", Err(T::AboveRoot)),
        ("/a/../../b", Err(T::AboveRoot)),
        ("/%2e%2e/", Err(T::AboveRoot)),
        ("/./..", Err(T::AboveRoot)),
        ("//../admin", Err(T::AboveRoot)),
        // Double encoding.
        ("/%252e%252e/admin", Err(T::DoubleEncoding)),
        ("/%252f", Err(T::DoubleEncoding)),
        ("/%252F", Err(T::DoubleEncoding)),
        ("/%2541", Err(T::DoubleEncoding)),
        ("/%25%32%66", Err(T::DoubleEncoding)),
        ("/%25%32f", Err(T::DoubleEncoding)),
        ("/%25", Ok("/%25")),
        ("/%25zz", Ok("/%25zz")),
        ("/%252", Ok("/%252")),
        ("/%25/2f", Ok("/%25/2f")),
        // NUL and bad escapes.
        ("/admin%00.css", Err(T::EncodedNul)),
        ("/%00", Err(T::EncodedNul)),
        ("/a%zz", Err(T::InvalidEscape)),
        ("/a%", Err(T::InvalidEscape)),
        ("/a%2", Err(T::InvalidEscape)),
        ("/a%%32%65", Err(T::InvalidEscape)),
        ("/a%g0", Err(T::InvalidEscape)),
        ("/a%2?x", Err(T::InvalidEscape)),
        ("/a%\u{e9}", Err(T::InvalidEscape)),
        // Controls, spaces, fragments.
        ("/a b", Err(T::ControlOrSpace)),
        ("/a\tb", Err(T::ControlOrSpace)),
        ("/a\r\nb", Err(T::ControlOrSpace)),
        ("/a\0", Err(T::ControlOrSpace)),
        ("/a\x7f", Err(T::ControlOrSpace)),
        ("/a?x y", Err(T::ControlOrSpace)),
        ("/a?x\n", Err(T::ControlOrSpace)),
        ("/a#x", Err(T::Fragment)),
        ("/a?x#y", Err(T::Fragment)),
        ("/#", Err(T::Fragment)),
        // Query handling.
        ("/a?x.css", Ok("/a?x.css")),
        ("/a?", Ok("/a?")),
        ("/a?b?c", Ok("/a?b?c")),
        ("/a?%2f..%2F%00\\", Ok("/a?%2f..%2F%00\\")),
        ("/a/../b?../c", Ok("/b?../c")),
        ("/?q=caf\u{e9}", Ok("/?q=caf\u{e9}")),
        ("/%61?%61", Ok("/a?%61")),
        // Not origin-form.
        ("", Err(T::NotOriginForm)),
        ("relative", Err(T::NotOriginForm)),
        ("*", Err(T::NotOriginForm)),
        ("http://host/x", Err(T::NotOriginForm)),
        ("host:443", Err(T::NotOriginForm)),
        ("?x", Err(T::NotOriginForm)),
        ("\\admin", Err(T::NotOriginForm)),
        (" /admin", Err(T::NotOriginForm)),
        ("%2fadmin", Err(T::NotOriginForm)),
        // Ordinary segments that merely look like dots.
        ("/.../x", Ok("/.../x")),
        ("/..../x", Ok("/..../x")),
        ("/.a/..b/c..", Ok("/.a/..b/c..")),
        ("/.%2e.", Ok("/...")),
        // Trailing slash handling and root.
        ("/", Ok("/")),
        ("/a/", Ok("/a/")),
        ("/a/.", Ok("/a/")),
        ("/a/..", Ok("/")),
        ("/a/b/..", Ok("/a/")),
        ("/a/b/../", Ok("/a/")),
        ("/a/b/c/../../d", Ok("/a/d")),
        ("/.", Ok("/")),
        ("//", Ok("/")),
        ("/a//", Ok("/a/")),
    ];

    /// (raw authority, expected `Authority` display or error).
    const AUTHORITY_CASES: &[(&str, Result<&str, HostError>)] = &[
        ("panel.example.test", Ok("panel.example.test")),
        ("Panel.Example.COM", Ok("panel.example.com")),
        ("panel.example.test.", Ok("panel.example.test")),
        ("panel.example.test.:8443", Ok("panel.example.test:8443")),
        ("panel.example.test..", Err(H::BadLabel)),
        ("panel.example.test\\static\\x#", Err(H::BadCharacter)),
        ("evil.com/.wild.test", Err(H::BadCharacter)),
        ("evil.com#.wild.test", Err(H::BadCharacter)),
        ("evil.com?.wild.test", Err(H::BadCharacter)),
        ("user@host", Err(H::Userinfo)),
        ("user:pass@host", Err(H::Userinfo)),
        ("host@evil.com", Err(H::Userinfo)),
        ("host:0", Err(H::BadPort)),
        ("host:65536", Err(H::BadPort)),
        ("host:65535", Ok("host:65535")),
        ("host:1", Ok("host:1")),
        ("host:080", Ok("host:80")),
        ("host:000080", Err(H::BadPort)),
        ("host:99999", Err(H::BadPort)),
        ("host:abc", Err(H::BadPort)),
        ("host:", Err(H::BadPort)),
        ("host:-1", Err(H::BadPort)),
        ("host:+80", Err(H::BadCharacter)),
        ("host:80:81", Err(H::BadCharacter)),
        (":80", Err(H::Empty)),
        ("", Err(H::Empty)),
        ("[::1]", Ok("[::1]")),
        ("[::1]:8080", Ok("[::1]:8080")),
        ("[0:0:0:0:0:0:0:1]", Ok("[::1]")),
        ("[2001:DB8:0:0:0:0:0:1]:443", Ok("[2001:db8::1]:443")),
        ("[::ffff:127.0.0.1]", Ok("[::ffff:127.0.0.1]")),
        ("[::1", Err(H::BadCharacter)),
        ("::1]", Err(H::BadCharacter)),
        ("::1", Err(H::BadCharacter)),
        ("[zz]", Err(H::BadCharacter)),
        ("[]", Err(H::BadCharacter)),
        ("[::1]x", Err(H::BadCharacter)),
        ("[::1]:", Err(H::BadPort)),
        ("[::1]:0", Err(H::BadPort)),
        ("[::1]]", Err(H::BadCharacter)),
        ("[fe80::1%eth0]", Err(H::BadCharacter)),
        ("host[::1]", Err(H::BadCharacter)),
        ("a..b", Err(H::BadLabel)),
        (".a", Err(H::BadLabel)),
        (".", Err(H::BadLabel)),
        ("..", Err(H::BadLabel)),
        ("-a.com", Err(H::BadLabel)),
        ("a-.com", Err(H::BadLabel)),
        ("a.-b.com", Err(H::BadLabel)),
        ("a-b.com", Ok("a-b.com")),
        ("xn--d1acufc.xn--p1ai", Ok("xn--d1acufc.xn--p1ai")),
        ("internal_host.lan", Ok("internal_host.lan")),
        ("a b", Err(H::BadCharacter)),
        ("a\tb", Err(H::BadCharacter)),
        ("host\r\nx", Err(H::BadCharacter)),
        (" host", Err(H::BadCharacter)),
        ("host ", Err(H::BadCharacter)),
        ("host?x", Err(H::BadCharacter)),
        ("%61.com", Err(H::BadCharacter)),
        ("*.example.com", Err(H::BadCharacter)),
        ("*", Err(H::BadCharacter)),
        ("caf\u{e9}.com", Err(H::BadCharacter)),
        ("host\0", Err(H::BadCharacter)),
        ("127.0.0.1:80", Ok("127.0.0.1:80")),
        ("127.0.0.1", Ok("127.0.0.1")),
        ("http://host", Err(H::BadCharacter)),
        ("host,evil.com", Err(H::BadCharacter)),
        ("host;evil.com", Err(H::BadCharacter)),
    ];

    /// (raw host, expected normalised host or error) for `normalise_host`.
    const HOST_CASES: &[(&str, Result<&str, HostError>)] = &[
        ("Panel.Example.COM", Ok("panel.example.com")),
        ("panel.example.test.", Ok("panel.example.test")),
        ("[::1]", Ok("[::1]")),
        ("[::1]:443", Err(H::BadPort)),
        ("host:80", Err(H::BadPort)),
        ("host:", Err(H::BadPort)),
        ("*.example.com", Err(H::BadCharacter)),
        ("example.com", Ok("example.com")),
        ("", Err(H::Empty)),
        ("a..b", Err(H::BadLabel)),
        ("user@host", Err(H::Userinfo)),
    ];

    #[test]
    fn target_table() {
        let mut failures = Vec::new();
        for &(raw, expected) in TARGET_CASES {
            let got = canonical_target(raw).map(|t| t.path_and_query());
            if got.as_deref().map_err(|e| *e) != expected {
                failures.push(format!("{raw:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(TARGET_CASES.len() >= 70);
    }

    #[test]
    fn authority_table() {
        let mut failures = Vec::new();
        for &(raw, expected) in AUTHORITY_CASES {
            let got = parse_authority(raw).map(|a| a.to_string());
            if got.as_deref().map_err(|e| *e) != expected {
                failures.push(format!("{raw:?}: expected {expected:?}, got {got:?}"));
            }
        }
        for &(raw, expected) in HOST_CASES {
            let got = normalise_host(raw);
            if got.as_deref().map_err(|e| *e) != expected {
                failures.push(format!("host {raw:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(AUTHORITY_CASES.len() + HOST_CASES.len() >= 60);
    }

    #[test]
    fn canonical_output_is_a_fixed_point() {
        for &(raw, _) in TARGET_CASES {
            if let Ok(target) = canonical_target(raw) {
                let again = canonical_target(&target.path_and_query());
                assert_eq!(again.as_ref(), Ok(&target), "{raw:?}");
                assert!(target.path().is_ascii(), "{raw:?}");
                assert!(!target.path().contains("//"), "{raw:?}");
            }
        }
    }

    #[test]
    fn query_is_split_at_the_first_question_mark() {
        let target = canonical_target("/a/../b?x=/../y?z").expect("valid target");
        assert_eq!(target.path(), "/b");
        assert_eq!(target.query(), Some("x=/../y?z"));
        let bare = canonical_target("/b").expect("valid target");
        assert_eq!(bare.query(), None);
        assert_eq!(bare.path_and_query(), "/b");
    }

    #[test]
    fn length_limits() {
        let at_limit = format!("/{}", "a".repeat(MAX_TARGET_LEN - 1));
        assert!(canonical_target(&at_limit).is_ok());
        let over = format!("/{}", "a".repeat(MAX_TARGET_LEN));
        assert_eq!(canonical_target(&over), Err(T::TooLong));
        let long_query = format!("/?{}", "q".repeat(MAX_TARGET_LEN));
        assert_eq!(canonical_target(&long_query), Err(T::TooLong));
        let deep = "/..".repeat(5000);
        assert_eq!(canonical_target(&deep), Err(T::TooLong));

        let label = "a".repeat(63);
        assert!(parse_authority(&format!("{label}.com")).is_ok());
        let long_label = "a".repeat(64);
        assert_eq!(
            parse_authority(&format!("{long_label}.com")),
            Err(H::BadLabel)
        );
        let name = [label.as_str(); 4].join(".");
        assert_eq!(name.len(), 255);
        assert!(normalise_host(&name).is_ok());
        assert_eq!(normalise_host(&format!("{name}.")), Err(H::TooLong));
        assert_eq!(parse_authority(&format!("{name}:80")), Err(H::TooLong));
    }

    #[test]
    fn authority_accessors() {
        let authority = parse_authority("[::1]:8443").expect("valid authority");
        assert_eq!(authority.host(), "[::1]");
        assert_eq!(authority.port(), Some(8443));
        let plain = parse_authority("Example.TEST.").expect("valid authority");
        assert_eq!(plain.host(), "example.test");
        assert_eq!(plain.port(), None);
        assert_eq!(plain.to_string(), "example.test");
    }

    #[test]
    fn errors_display_a_reason() {
        assert_eq!(
            T::EncodedSeparator.to_string(),
            "an encoded '/' or '\\' in the path"
        );
        for &(_, expected) in TARGET_CASES {
            if let Err(e) = expected {
                assert!(!e.to_string().is_empty());
            }
        }
        for &(_, expected) in AUTHORITY_CASES {
            if let Err(e) = expected {
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn forward_auth_targets_refuse_every_dot_segment() {
        for raw in [
            "/admin/../static/x",
            "/static/%2e%2e/admin",
            "/./admin",
            "/a/%2E/b",
            "/a/.",
            "/a/..",
        ] {
            assert_eq!(
                canonical_target_without_dots(raw),
                Err(TargetError::DotSegment),
                "{raw}"
            );
        }
        for raw in ["/a/.../b", "/a/.b/", "/a.b/c", "/%61dmin", "/a//b?x=/../"] {
            assert!(canonical_target_without_dots(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn a_target_knows_whether_the_raw_form_already_spells_it() {
        let t = |raw: &str| canonical_target(raw).unwrap();
        assert!(t("/a/b?x=1").is_spelled("/a/b?x=1"));
        assert!(t("/a/b").is_spelled("/a/b"));
        assert!(!t("/a/./b").is_spelled("/a/./b"));
        assert!(!t("/%61").is_spelled("/%61"));
        assert!(!t("/a?").is_spelled("/a"));
        assert!(!t("/a").is_spelled("/a?"));
    }
}
