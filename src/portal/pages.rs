//! The portal's page templates (askama, compiled in from `assets/templates/`).

use askama::Template;

use crate::texts::Texts;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub username: &'a str,
    pub remember_me: bool,
    /// Offer "forgot your password?".
    pub forgot: bool,
    pub error: Option<String>,
    pub info: Option<&'a str>,
    /// Offer "sign in with a passkey".
    pub passkeys: bool,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
pub struct SignedInPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub name: &'a str,
    pub username: &'a str,
    pub continue_to: Option<&'a str>,
    /// "Back to ⟨panel⟩" when there is no "Continue" (proxy mode: the panel's root).
    pub back: Option<String>,
}

#[derive(Template)]
#[template(path = "sign_out.html")]
pub struct SignOutPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub name: &'a str,
    pub username: &'a str,
    /// Where to go after signing in again (validated; may be empty).
    pub rd: &'a str,
    /// "Stay signed in": the validated `rd`, else the default.
    pub stay: &'a str,
}

/// The 403 page: who is signed in, another account, and the way back.
#[derive(Template)]
#[template(path = "denied.html")]
pub struct DeniedPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    /// The signed-in user's name and username, if anyone is signed in.
    pub who: Option<(&'a str, &'a str)>,
    /// The refused page, to sign in to as someone else (validated by the sign-in page).
    pub rd: &'a str,
    pub home: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub text: &'a str,
    /// The way on (address, label); `None`: back to sign-in.
    pub link: Option<(&'a str, &'a str)>,
}

/// Renders a template; a rendering failure becomes a plain error line.
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template rendering failed");
        "Something went wrong on our side.".to_string()
    })
}

/// A method choice on the second-step page.
pub struct MethodLink {
    pub id: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "backup_used.html")]
pub struct BackupUsedPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub left: usize,
    pub left_text: String,
    pub warning: Option<&'static str>,
    /// Where "Continue" goes: the validated `rd`, else the default.
    pub onwards: String,
}

#[derive(Template)]
#[template(path = "second_step.html")]
pub struct SecondStepPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    /// `&rd=...` to append to method links, or empty.
    pub rd_link: &'a str,
    pub methods: Vec<MethodLink>,
    pub current: &'static str,
    pub code_label: &'static str,
    pub numeric: bool,
    pub error: Option<String>,
    pub hint: Option<&'static str>,
    /// Show the "email me a code" button.
    pub email_send: bool,
    pub send_label: &'static str,
    pub info: Option<String>,
    /// Offer the phone reserve method.
    pub phone: bool,
    /// "Do not ask again on this device for N days", when trusted devices are on.
    pub trust_label: Option<String>,
    /// `?rd=...` or empty.
    pub rd_query: String,
    /// For the passkey method: the options for `navigator.credentials.get` (JSON) and
    /// the ceremony id.
    pub webauthn_options: Option<(String, String)>,
    /// For the Telegram method: the pending attempt or how to start one.
    pub telegram: Option<crate::portal::telegram::StepView>,
}

/// A fresh "link a Telegram account" deep link, shown in the settings' Telegram section
/// until the bot sees it used.
pub struct TelegramLink {
    pub deep_link: String,
    /// `data:image/svg+xml;base64,...` of the QR code of the deep link.
    pub qr: String,
    /// Accounts linked before this link was made.
    pub before: usize,
}

/// One event of the user's recent activity.
pub struct ActivityRow {
    pub when: crate::texts::Moment,
    pub what: String,
    pub ip: String,
}

/// One trusted device on the settings page.
pub struct TrustedRow {
    /// Its [`crate::auth::devices::TrustedDevice::id`], for "Forget".
    pub id: String,
    pub device: String,
    pub ip: String,
    pub trusted: crate::texts::Moment,
    pub until: crate::texts::Moment,
    /// This browser.
    pub current: bool,
}

/// One linked Telegram account.
pub struct TelegramRow {
    pub id: i64,
    pub label: String,
    pub linked: crate::texts::Moment,
    pub remove_confirm: String,
}

/// One line of the passkey and security key list.
pub struct DeviceRow {
    pub key: String,
    pub name: String,
    pub added: crate::texts::Moment,
    pub last_used: Option<crate::texts::Moment>,
    pub passwordless: bool,
    /// The browser said the device stored no passkey, so passwordless cannot work.
    pub not_discoverable: bool,
    pub delete_confirm: String,
}

/// One line of the sessions list.
pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub created: crate::texts::Moment,
    pub last_seen: crate::texts::Moment,
    pub current: bool,
    /// How it signed in ("Password + Authenticator app"); empty when not recorded.
    pub signed_in_with: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub username: &'a str,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    pub continue_to: Option<String>,
    /// "Back to ⟨panel⟩": the validated `rd`, else the default.
    pub back: String,
    /// The notice asks for something (a second factor), rather than reporting success.
    pub notice_is_warning: bool,
    /// The two-step verification line, and the next step recommended when it is off.
    pub summary: (String, Option<&'static str>),
    pub back_label: String,
    /// Whether a Telegram bot is configured.
    pub telegram_available: bool,
    /// A link just made, to show and wait on.
    pub telegram_link: Option<TelegramLink>,
    pub telegram_on: bool,
    pub telegram_accounts: Vec<TelegramRow>,
    /// Unlinking the one account ends 2FA (Telegram is the only factor).
    pub telegram_is_last: bool,
    /// Telegram is the user's only factor (turning it off ends 2FA).
    pub telegram_only: bool,
    /// Whether a passkey is available at all.
    pub passkeys_available: bool,
    pub devices: Vec<DeviceRow>,
    /// Deleting a device ends 2FA (it is the only device of the only factor).
    pub device_is_last: bool,
    /// The name typed last time (after an error).
    pub device_name: &'a str,
    pub device_name_max: usize,
    pub totp_on: bool,
    pub totp_is_last: bool,
    pub email_on: bool,
    pub email_is_last: bool,
    pub has_email: bool,
    pub email_address: &'a str,
    pub phone_enabled: bool,
    /// (E.164 number, confirmed).
    pub phone_numbers: Vec<(String, bool)>,
    pub mail_enabled: bool,
    pub two_factor_on: bool,
    pub backup_left: usize,
    /// Trusted devices are offered at the second step.
    /// The section shown open, with the error beside its form ("" for none).
    pub open: &'static str,
    /// The user's kept events are shown (`portal.activity_days` > 0).
    pub activity_on: bool,
    pub activity_intro: String,
    pub activity: Vec<ActivityRow>,
    pub trust_offered: bool,
    pub trusted: Vec<TrustedRow>,
    pub sessions: Vec<SessionRow>,
    pub min_length: usize,
}

#[derive(Template)]
#[template(path = "totp_enroll.html")]
pub struct TotpEnrollPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub uri: &'a str,
    /// `data:image/svg+xml;base64,...` of the QR code.
    pub qr: String,
    /// The base32 secret in groups of four.
    pub secret: String,
    pub error: Option<String>,
    pub hint: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "backup_codes.html")]
pub struct BackupCodesPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub codes: Vec<String>,
    /// `data:text/plain;...` for the download link.
    pub download: String,
    pub next: String,
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "confirm_password.html")]
pub struct ConfirmPasswordPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub next: &'a str,
    pub replay: Vec<(String, String)>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "confirm_identity.html")]
pub struct ConfirmIdentityPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub next: &'a str,
    pub replay: Vec<(String, String)>,
    /// The intro (before a code is sent) or "sent to ..." line.
    pub intro: String,
    /// Whether a code was sent, so the code field is shown.
    pub sent: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "email_confirm.html")]
pub struct EmailConfirmPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    /// Where the code form posts (below the mount).
    pub action: &'a str,
    /// Offer "send again".
    pub resend: bool,
    pub info: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub info: Option<String>,
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub warn_2fa: bool,
    pub min_length: usize,
    pub error: Option<String>,
    pub done: Option<Vec<&'static str>>,
}

#[derive(Template)]
#[template(path = "phone_step.html")]
pub struct PhoneStepPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    /// (index, masked number) of each confirmed number.
    pub numbers: Vec<(usize, String)>,
    pub info: Option<String>,
    pub error: Option<String>,
    /// What to type, once a call or SMS went out.
    pub code_label: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "phone_done.html")]
pub struct PhoneDonePage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
}

#[derive(Template)]
#[template(path = "webauthn_register.html")]
pub struct WebauthnRegisterPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub name: &'a str,
    /// The options for `navigator.credentials.create` (JSON).
    pub options: String,
    pub ceremony: String,
}
