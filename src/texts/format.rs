//! Values shown in texts: times and devices.

use crate::basics::Timestamp;

/// `2026-11-22 06:02 UTC`.
pub fn format_time(ts: Timestamp) -> String {
    let text = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts),
    )
    .to_string();
    format!(
        "{} UTC",
        text.replace('T', " ")
            .trim_end_matches('Z')
            .rsplit_once(':')
            .map_or(text.as_str(), |(hm, _)| hm)
    )
}

/// "Firefox 120 on Linux" from a user agent.
pub fn describe_device(user_agent: &str) -> String {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(r) if r.name != "UNKNOWN" => {
            let major = r.version.split('.').next().unwrap_or("");
            let browser = if major.is_empty() || major == "UNKNOWN" {
                r.name.to_string()
            } else {
                format!("{} {major}", r.name)
            };
            if r.os == "UNKNOWN" {
                browser
            } else {
                format!("{browser} on {}", r.os)
            }
        }
        _ if user_agent.is_empty() => "Unknown device".into(),
        _ => user_agent.chars().take(60).collect(),
    }
}
