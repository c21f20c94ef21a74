//! Every path the portal serves, in one table: the router matches these, the templates
//! link to them (`{{ crate::portal::routes::X }}`), redirects and mailed links are built
//! from them, and the checks of what may be replayed after a password confirmation name
//! them. `tests/routes.rs` fails on a route the router does not serve and on a template
//! that spells a portal path out. (The demo's stand-in panel links to the proxy mount's
//! pages as any panel would; `config/telegram.rs` checks a webhook URL's ending.)
//!
//! Paths are relative to the portal's mount: `/` on the portal listener, `/.gatehouse`
//! in proxy mode.

pub const LOGIN_PAGE: &str = "/";
pub const SECOND_STEP: &str = "/2fa";
pub const SECOND_STEP_EMAIL: &str = "/2fa/email";
pub const SECOND_STEP_BACKUP_USED: &str = "/2fa/backup-used";
pub const SECOND_STEP_PHONE: &str = "/2fa/phone";
pub const SECOND_STEP_PHONE_CALL: &str = "/2fa/phone/call";
pub const SECOND_STEP_PHONE_VERIFY: &str = "/2fa/phone/verify";
pub const SECOND_STEP_TELEGRAM_START: &str = "/2fa/telegram/start";
pub const SECOND_STEP_TELEGRAM_WAIT: &str = "/2fa/telegram/wait";
pub const API_AUTHZ_AUTH_REQUEST: &str = "/api/authz/auth-request";
pub const API_AUTHZ_FORWARD_AUTH: &str = "/api/authz/forward-auth";
pub const API_HEALTH: &str = "/api/health";
pub const ASSETS_SETTINGS_JS: &str = "/assets/settings.js";
pub const ASSETS_STYLE_CSS: &str = "/assets/style.css";
pub const ASSETS_BRAND_CSS: &str = "/assets/brand.css";
pub const ASSETS_LOGO: &str = "/assets/logo";
pub const ASSETS_TELEGRAM_JS: &str = "/assets/telegram.js";
pub const ASSETS_WEBAUTHN_JS: &str = "/assets/webauthn.js";
pub const DENIED: &str = "/denied";
pub const FORGOT: &str = "/forgot";
pub const LANGUAGE: &str = "/lang";
pub const LOGIN: &str = "/login";
pub const LOGIN_PASSKEY: &str = "/login/passkey";
pub const LOGIN_PASSKEY_OPTIONS: &str = "/login/passkey/options";
pub const LOGOUT: &str = "/logout";
pub const RESET: &str = "/reset";
pub const SETTINGS: &str = "/settings";
pub const SETTINGS_ADDRESS_CONFIRM: &str = "/settings/address/confirm";
pub const SETTINGS_ADDRESS_START: &str = "/settings/address/start";
pub const SETTINGS_BACKUP_REGENERATE: &str = "/settings/backup/regenerate";
pub const SETTINGS_CONFIRM: &str = "/settings/confirm";
pub const SETTINGS_DEVICES_FORGET: &str = "/settings/devices/forget";
pub const SETTINGS_DEVICES_FORGET_ALL: &str = "/settings/devices/forget-all";
pub const SETTINGS_EMAIL_CONFIRM: &str = "/settings/email/confirm";
pub const SETTINGS_EMAIL_DISABLE: &str = "/settings/email/disable";
pub const SETTINGS_EMAIL_START: &str = "/settings/email/start";
pub const SETTINGS_IDENTITY_SEND: &str = "/settings/identity/send";
pub const SETTINGS_IDENTITY_VERIFY: &str = "/settings/identity/verify";
pub const SETTINGS_PASSWORD: &str = "/settings/password";
pub const SETTINGS_PHONE_ADD: &str = "/settings/phone/add";
pub const SETTINGS_PHONE_CONFIRM: &str = "/settings/phone/confirm";
pub const SETTINGS_PHONE_REMOVE: &str = "/settings/phone/remove";
pub const SETTINGS_SESSIONS_END: &str = "/settings/sessions/end";
pub const SETTINGS_SESSIONS_END_OTHERS: &str = "/settings/sessions/end-others";
pub const SETTINGS_TELEGRAM_DISABLE: &str = "/settings/telegram/disable";
pub const SETTINGS_TELEGRAM_ENABLE: &str = "/settings/telegram/enable";
pub const SETTINGS_TELEGRAM_LINK: &str = "/settings/telegram/link";
pub const SETTINGS_TELEGRAM_LINKED: &str = "/settings/telegram/linked";
pub const SETTINGS_TELEGRAM_REMOVE: &str = "/settings/telegram/remove";
pub const SETTINGS_TELEGRAM_STATUS: &str = "/settings/telegram/status";
pub const SETTINGS_TOTP: &str = "/settings/totp";
pub const SETTINGS_TOTP_CONFIRM: &str = "/settings/totp/confirm";
pub const SETTINGS_TOTP_DISABLE: &str = "/settings/totp/disable";
pub const SETTINGS_TOTP_START: &str = "/settings/totp/start";
pub const SETTINGS_WEBAUTHN_ADD: &str = "/settings/webauthn/add";
pub const SETTINGS_WEBAUTHN_DELETE: &str = "/settings/webauthn/delete";
pub const SETTINGS_WEBAUTHN_FINISH: &str = "/settings/webauthn/finish";
pub const SETTINGS_WEBAUTHN_PASSWORDLESS: &str = "/settings/webauthn/passwordless";
pub const TELEGRAM_WEBHOOK: &str = "/telegram/webhook";

/// The page a form that posts to `path` is on: where a reload of the post's address
/// (a GET) goes, and where "Reload the form" leads.
pub fn page_of_form(path: &str) -> &'static str {
    if path.starts_with("/settings") {
        SETTINGS
    } else if path.starts_with("/2fa") {
        SECOND_STEP
    } else if path.starts_with(FORGOT) {
        FORGOT
    } else {
        LOGIN_PAGE
    }
}

/// Every route, for the tests that check the table against the router and templates.
pub const ALL: &[&str] = &[
    LOGIN_PAGE,
    SECOND_STEP,
    SECOND_STEP_EMAIL,
    SECOND_STEP_BACKUP_USED,
    SECOND_STEP_PHONE,
    SECOND_STEP_PHONE_CALL,
    SECOND_STEP_PHONE_VERIFY,
    SECOND_STEP_TELEGRAM_START,
    SECOND_STEP_TELEGRAM_WAIT,
    API_AUTHZ_AUTH_REQUEST,
    API_AUTHZ_FORWARD_AUTH,
    API_HEALTH,
    ASSETS_SETTINGS_JS,
    ASSETS_STYLE_CSS,
    ASSETS_BRAND_CSS,
    ASSETS_LOGO,
    ASSETS_TELEGRAM_JS,
    ASSETS_WEBAUTHN_JS,
    DENIED,
    FORGOT,
    LANGUAGE,
    LOGIN,
    LOGIN_PASSKEY,
    LOGIN_PASSKEY_OPTIONS,
    LOGOUT,
    RESET,
    SETTINGS,
    SETTINGS_ADDRESS_CONFIRM,
    SETTINGS_ADDRESS_START,
    SETTINGS_BACKUP_REGENERATE,
    SETTINGS_CONFIRM,
    SETTINGS_DEVICES_FORGET,
    SETTINGS_DEVICES_FORGET_ALL,
    SETTINGS_EMAIL_CONFIRM,
    SETTINGS_EMAIL_DISABLE,
    SETTINGS_EMAIL_START,
    SETTINGS_IDENTITY_SEND,
    SETTINGS_IDENTITY_VERIFY,
    SETTINGS_PASSWORD,
    SETTINGS_PHONE_ADD,
    SETTINGS_PHONE_CONFIRM,
    SETTINGS_PHONE_REMOVE,
    SETTINGS_SESSIONS_END,
    SETTINGS_SESSIONS_END_OTHERS,
    SETTINGS_TELEGRAM_DISABLE,
    SETTINGS_TELEGRAM_ENABLE,
    SETTINGS_TELEGRAM_LINK,
    SETTINGS_TELEGRAM_LINKED,
    SETTINGS_TELEGRAM_REMOVE,
    SETTINGS_TELEGRAM_STATUS,
    SETTINGS_TOTP,
    SETTINGS_TOTP_CONFIRM,
    SETTINGS_TOTP_DISABLE,
    SETTINGS_TOTP_START,
    SETTINGS_WEBAUTHN_ADD,
    SETTINGS_WEBAUTHN_DELETE,
    SETTINGS_WEBAUTHN_FINISH,
    SETTINGS_WEBAUTHN_PASSWORDLESS,
    TELEGRAM_WEBHOOK,
];
