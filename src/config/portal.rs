//! `[portal]`: the portal's public URL and where to go after login.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPortal {
    /// The portal's external URL, e.g. `https://auth.example.com`.
    pub url: Option<String>,
    /// Where to go after a login that had no (valid) `rd`.
    pub default_redirect: Option<String>,
    /// Extra domains `rd` may point into (the cookie domain, proxy hosts and rule
    /// domains are always allowed).
    pub protected_domains: Vec<String>,
    /// The panel's name, on every page and message ("gatehouse" when unset).
    pub name: Option<String>,
    /// A logo file (PNG, SVG, JPEG or WebP, at most 256 KiB) shown above each page.
    pub logo: Option<std::path::PathBuf>,
    /// The accent colour of buttons and links: `#rrggbb` or `#rgb`.
    pub accent: Option<String>,
    /// Where users who lost their methods get help: a URL or a line of text.
    pub support: Option<String>,
    /// Days the settings page's "Recent activity" reaches back (0: not kept).
    pub activity_days: u64,
}

impl Default for RawPortal {
    fn default() -> Self {
        RawPortal {
            url: None,
            default_redirect: None,
            protected_domains: Vec::new(),
            name: None,
            logo: None,
            accent: None,
            support: None,
            activity_days: 30,
        }
    }
}

impl RawPortal {
    /// The brand these settings describe; a bad value names its key and the reason.
    pub fn brand(&self) -> Result<crate::texts::brand::Brand> {
        use crate::texts::brand::{Brand, Support};
        let mut brand = Brand::default();
        if let Some(name) = &self.name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
                return Err(Error::config(
                    "portal.name",
                    name,
                    "1 to 60 characters, no control characters",
                ));
            }
            brand.name = name.to_string();
        }
        if let Some(path) = &self.logo {
            let content_type = match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("png") => "image/png",
                Some("svg") => "image/svg+xml",
                Some("jpg" | "jpeg") => "image/jpeg",
                Some("webp") => "image/webp",
                _ => {
                    return Err(Error::config(
                        "portal.logo",
                        path.display(),
                        "a .png, .svg, .jpg or .webp file",
                    ))
                }
            };
            let bytes = std::fs::read(path).map_err(|e| {
                Error::config(
                    "portal.logo",
                    path.display(),
                    format!("cannot be read: {e}"),
                )
            })?;
            if bytes.is_empty() || bytes.len() > 256 * 1024 {
                return Err(Error::config(
                    "portal.logo",
                    path.display(),
                    "must be between 1 byte and 256 KiB",
                ));
            }
            brand.logo = Some((bytes, content_type));
        }
        if let Some(accent) = &self.accent {
            let hex = accent.strip_prefix('#').unwrap_or("");
            if !matches!(hex.len(), 3 | 6) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::config(
                    "portal.accent",
                    accent,
                    "a colour such as #0b5fff or #05f",
                ));
            }
            brand.accent = Some(accent.to_ascii_lowercase());
        }
        if let Some(support) = &self.support {
            let support = support.trim();
            if support.chars().any(char::is_control) {
                return Err(Error::config(
                    "portal.support",
                    support,
                    "one line, with no control characters",
                ));
            }
            brand.support = if support.starts_with("https://") || support.starts_with("http://") {
                url::Url::parse(support).map_err(|e| {
                    Error::config("portal.support", support, format!("not a URL: {e}"))
                })?;
                Some(Support::Url(support.to_string()))
            } else if support.starts_with("mailto:") {
                Some(Support::Url(support.to_string()))
            } else if support.is_empty() || support.chars().any(char::is_control) {
                return Err(Error::config(
                    "portal.support",
                    support,
                    "a URL (https://…, mailto:…) or one line of text",
                ));
            } else {
                Some(Support::Text(support.to_string()))
            };
        }
        Ok(brand)
    }
}
