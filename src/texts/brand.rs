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
    /// The stylesheet that carries the accent colour (empty without one).
    pub fn css(&self) -> String {
        match &self.accent {
            Some(colour) => format!(":root {{ --accent: {colour}; }}\n"),
            None => String::new(),
        }
    }
}
