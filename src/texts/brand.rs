//! The operator's brand (`[portal] name`, `logo`, `accent`, `support`): the panel's
//! name in page titles and headers, mails, Telegram messages and, by default, the
//! authenticator apps' issuer and the passkey relying party's name. Set once at start
//! (`install`); every page and message reads it. Until then, and for a configuration
//! that names nothing, it is "gatehouse" with no logo.

use std::sync::OnceLock;

/// What the operator's users see of their panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    /// The panel's name ("Acme Admin").
    pub name: String,
    /// The logo's bytes and content type, served at `/assets/logo`.
    pub logo: Option<(Vec<u8>, &'static str)>,
    /// The accent colour (`#rrggbb` or `#rgb`), served in `/assets/brand.css`.
    pub accent: Option<String>,
    /// Where users who lost their methods get help: a URL or a line of text.
    pub support: Option<Support>,
}

/// Where to get help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Url(String),
    Text(String),
}

impl Default for Brand {
    fn default() -> Self {
        Brand {
            name: "gatehouse".into(),
            logo: None,
            accent: None,
            support: None,
        }
    }
}

static BRAND: OnceLock<Brand> = OnceLock::new();

/// Sets the brand for this process (the first call wins: it is the configuration's).
pub fn install(brand: Brand) {
    let _ = BRAND.set(brand);
}

/// The brand in force.
pub fn brand() -> &'static Brand {
    BRAND.get_or_init(Brand::default)
}

impl Brand {
    /// The stylesheet that carries the accent colour (empty without one): in both
    /// colour schemes, with the text on it black or white, whichever reads better.
    pub fn css(&self) -> String {
        let Some(colour) = &self.accent else {
            return String::new();
        };
        let on = if contrast(luminance(colour), 1.0) >= contrast(luminance(colour), 0.0) {
            "#fff"
        } else {
            "#000"
        };
        // Links take the accent only where it reads as text on the white card (4.5:1);
        // a light accent leaves them the default blue.
        let link = if contrast(luminance(colour), 1.0) >= 4.5 {
            format!(" --link: {colour};")
        } else {
            String::new()
        };
        format!(
            ":root {{ --accent: {colour}; --on-accent: {on};{link} }}\n\
             @media (prefers-color-scheme: dark) {{ :root {{ --accent: {colour}; --on-accent: {on}; --link: #58a6ff; }} }}\n"
        )
    }
}

/// The relative luminance (WCAG) of `#rgb` or `#rrggbb`.
fn luminance(colour: &str) -> f64 {
    let hex = colour.trim_start_matches('#');
    let hex: String = if hex.len() == 3 {
        hex.chars().flat_map(|c| [c, c]).collect()
    } else {
        hex.to_string()
    };
    let channel = |i: usize| {
        let v =
            u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) as f64 / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
}

/// The WCAG contrast ratio of two luminances.
fn contrast(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_on_the_accent_is_whichever_of_black_and_white_reads_better() {
        let with = |accent: &str| Brand {
            accent: Some(accent.into()),
            ..Brand::default()
        };
        assert!(with("#1f6feb").css().contains("--on-accent: #fff"));
        assert!(with("#ffd33d").css().contains("--on-accent: #000"));
        assert!(with("#fff").css().contains("--on-accent: #000"));
        assert_eq!(Brand::default().css(), "");
    }
}
