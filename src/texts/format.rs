//! Values shown in texts: times and devices, in the reader's language.
//!
//! A time is written out in UTC, said so ("23 November 2026, 22:13 UTC"); pages also
//! carry it as ISO 8601 in a `<time>` element, which the browser's script rewrites in
//! the reader's own time zone.

use fluent_bundle::FluentArgs;

use crate::basics::Timestamp;
use crate::texts::fluent;

/// The messages this module formats with (for the completeness test).
pub const MESSAGES: &[&str] = &[
    "device-on",
    "device-unknown",
    "date-time",
    "month-1",
    "month-2",
    "month-3",
    "month-4",
    "month-5",
    "month-6",
    "month-7",
    "month-8",
    "month-9",
    "month-10",
    "month-11",
    "month-12",
];

/// 9999-12-31T23:59:59Z, the last moment RFC 3339 can write.
const LAST_SECOND: Timestamp = 253_402_300_799;

/// A moment as a page shows it: the text, and ISO 8601 for the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub iso: String,
    pub text: String,
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `ts` in `lang`, in UTC: "23 November 2026, 22:13 UTC", "23 листопада 2026, 22:13 UTC".
pub fn moment(lang: &str, ts: Timestamp) -> Moment {
    // RFC 3339 ends with year 9999: a later time (only a damaged record has one) is
    // shown as that.
    let ts = ts.min(LAST_SECOND);
    let iso = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts),
    )
    .to_string();
    // 2026-11-23T22:13:05Z
    let (year, month, day) = (&iso[0..4], &iso[5..7], &iso[8..10]);
    let mut args = FluentArgs::new();
    args.set("day", day.trim_start_matches('0').to_string());
    args.set(
        "month",
        fluent::format(
            lang,
            &format!("month-{}", month.trim_start_matches('0')),
            &FluentArgs::new(),
        )
        .unwrap_or_else(|| month.to_string()),
    );
    args.set("year", year.to_string());
    args.set("time", iso[11..16].to_string());
    let text = fluent::format(lang, "date-time", &args).unwrap_or_else(|| format_time(ts));
    Moment { iso, text }
}

/// `2026-11-22 06:02 UTC`.
pub fn format_time(ts: Timestamp) -> String {
    let ts = ts.min(LAST_SECOND);
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

/// "Firefox 120 on Linux" (in `lang`) from a user agent.
pub fn describe_device(lang: &str, user_agent: &str) -> String {
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
                let mut args = FluentArgs::new();
                args.set("browser", browser.clone());
                args.set("os", r.os.to_string());
                fluent::format(lang, "device-on", &args).unwrap_or(browser)
            }
        }
        _ if user_agent.is_empty() => {
            fluent::format(lang, "device-unknown", &FluentArgs::new()).unwrap_or_default()
        }
        _ => user_agent.chars().take(60).collect(),
    }
}
