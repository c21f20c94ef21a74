//! The Security settings page, for the signed-in user's own account: authenticator app,
//! backup codes, sessions, password.
//!
//! Every change is a POST behind CSRF protection. Changes also need the password to
//! have been entered within `second_factor.reauthentication_window`; when it was not,
//! the user gets a "confirm your password" page that, once answered, replays the same
//! form (HTTP 307 keeps the method and body). Turning off the last factor always asks
//! for the password in the form itself.
//!
//! This module is the page itself; one submodule per thing the user manages
//! ([`authenticator`], [`address`] for email codes and the address, [`phone`],
//! [`sessions`], [`password`], [`factors`] as a whole), and the steps every change may
//! pass through ([`confirm`], [`identity`]).

use base64::Engine;
use http::StatusCode;

use crate::audit;
use crate::auth::limiter::{login_keys, user_key};
use crate::auth::session::Identity;
use crate::auth::session::{end_sessions, Sessions};
use crate::basics::now;
use crate::error::{Error, Result};
use crate::http::{add_cookie, html, redirect, Request, Response};
use crate::mfa::{self, backup, email, totp, webauthn, Factor};
use crate::notify::email::{Delivery, Letter};
use crate::portal::common::{
    attempt_failed, begin_attempt, check_csrf, csrf_for, established, onwards, rd_query, Gate,
};
use crate::portal::pages::{
    render, ActivityRow, BackupCodesPage, ConfirmIdentityPage, ConfirmPasswordPage, DeviceRow,
    EmailConfirmPage, SessionRow, SettingsPage, TelegramLink, TelegramRow, TotpEnrollPage,
    TrustedRow,
};
use crate::portal::routes;
use crate::state::AppState;
use crate::store::AuthLevel;
use crate::texts::{banned_message, fill, Texts};
use crate::texts::{describe_device, moment};

/// The identity for a settings change, or an early return with the response to send.
macro_rules! change {
    ($state:expr, $req:expr, $t:expr, $action:expr) => {
        match authorise_change($state, $req, $t, $action).await? {
            Ok(identity) => identity,
            Err(response) => return Ok(response),
        }
    };
}
pub(crate) use change;

mod address;
mod authenticator;
mod confirm;
mod factors;
mod identity;
mod password;
mod phone;
mod sessions;

pub use address::*;
pub use authenticator::*;
pub use confirm::*;
pub use factors::*;
pub use identity::*;
pub use password::*;
pub use phone::*;
pub use sessions::*;

fn notice_text(t: &'static Texts, key: &str) -> Option<&'static str> {
    Some(match key {
        "password" => t.done_password,
        "totp_on" => t.done_totp_on,
        "totp_off" => t.done_totp_off,
        "email_on" => t.done_email_on,
        "email_off" => t.done_email_off,
        "address" => t.done_address,
        "number_added" => t.done_number_added,
        "number_removed" => t.done_number_removed,
        "2fa_off" => t.done_2fa_off,
        "session_ended" => t.done_session_ended,
        "others_ended" => t.done_others_ended,
        "device_forgotten" => t.done_trusted_forgotten,
        "devices_forgotten" => t.done_trusted_all_forgotten,
        "two_factor_needed" => t.two_factor_needed,
        "webauthn_added" => t.passkeys.done_added,
        "webauthn_deleted" => t.passkeys.done_deleted,
        "passwordless_on" => t.passkeys.done_passwordless_on,
        "passwordless_off" => t.passkeys.done_passwordless_off,
        "telegram_on" => t.telegram.done_on,
        "telegram_off" => t.telegram.done_off,
        "telegram_linked" => t.telegram.done_linked,
        "telegram_removed" => t.telegram.done_removed,
        "identity" => t.identity_done,
        _ => return None,
    })
}

pub(crate) async fn settings_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response> {
    settings_page_with(state, req, t, identity, status, error, None).await
}

/// The settings page, with the Telegram section showing a fresh deep link when given.
pub(crate) async fn settings_page_with(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    status: StatusCode,
    error: Option<String>,
    telegram_link: Option<TelegramLink>,
) -> Result<Response> {
    let username = &identity.user.username;
    let rd = req.query_param("rd").unwrap_or_default();
    let factors = mfa::enabled_factors(state.store.as_ref(), username).await?;
    let totp_on = factors.contains(&Factor::Totp);
    let email_on = factors.contains(&Factor::Email);
    let mut notice = req.query_param("done").and_then(|k| notice_text(t, &k));
    if notice.is_none() && !rd.is_empty() && factors.is_empty() {
        notice = Some(t.two_factor_needed);
    }
    let mut sessions = state.store.sessions_of(username).await?;
    sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
    let rows = sessions
        .iter()
        .filter(|s| s.level >= AuthLevel::OneFactor || s.id == identity.session.id)
        .map(|s| SessionRow {
            id: s.id.clone(),
            device: describe_device(t.lang, &s.user_agent),
            ip: s.ip.clone(),
            created: moment(t.lang, s.created_at),
            last_seen: moment(t.lang, s.last_seen),
            signed_in_with: method_names(t, &s.method),
            current: s.id == identity.session.id,
        })
        .collect();
    let this_browser = crate::auth::devices::device_id(&state.sessions, req.header("cookie"));
    let trusted =
        crate::auth::devices::trusted_devices(state.store.as_ref(), &identity.user, now())
            .await?
            .into_iter()
            .map(|d| TrustedRow {
                current: this_browser.as_deref().is_some_and(|id| d.is(id)),
                device: describe_device(t.lang, &d.user_agent),
                ip: d.ip,
                trusted: moment(t.lang, d.created_at),
                until: moment(t.lang, d.expires_at),
                id: d.id,
            })
            .collect::<Vec<_>>();
    let activity = if state.config.activity_days > 0 {
        crate::activity::recent(state.store.as_ref(), username, ACTIVITY_SHOWN)
            .await?
            .iter()
            .map(|e| ActivityRow {
                when: moment(t.lang, e.at()),
                what: activity_text(t, e),
                ip: e.ip.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let continue_to = (!rd.is_empty() && !factors.is_empty()).then(|| onwards(state, &rd));
    let devices = webauthn::devices(state.store.as_ref(), username).await?;
    let telegram_accounts = crate::mfa::telegram::accounts(state.store.as_ref(), username).await?;
    let device_is_last = devices.len() == 1 && factors == [Factor::Webauthn];
    let summary = two_step_summary(state, t, &factors, devices.len());
    let device_rows = devices
        .into_iter()
        .map(|d| DeviceRow {
            key: d.key,
            added: moment(t.lang, d.added_at),
            last_used: d.last_used.map(|ts| moment(t.lang, ts)),
            passwordless: d.passwordless,
            not_discoverable: d.discoverable == Some(false),
            delete_confirm: fill(t.passkeys.delete_confirm, &d.name),
            name: d.name,
        })
        .collect();
    let form = req.form();
    let device_name = if req.path == routes::SETTINGS_WEBAUTHN_ADD {
        form.get("name").unwrap_or("")
    } else {
        ""
    };
    // The section whose form was just sent opens, with its error beside it.
    let open = if error.is_some() || telegram_link.is_some() {
        section_of(&req.path)
    } else {
        ""
    };
    let csrf = csrf_for(state, req);
    let page = SettingsPage {
        open,
        t,
        title: t.settings_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: &rd,
        username,
        notice,
        error,
        continue_to,
        back: onwards(state, &rd),
        notice_is_warning: notice == Some(t.two_factor_needed),
        summary,
        back_label: fill(t.back_to_panel, &crate::texts::brand().name),
        telegram_available: state.telegram.is_some(),
        telegram_link,
        telegram_on: factors.contains(&Factor::Telegram),
        telegram_is_last: factors == [Factor::Telegram] && telegram_accounts.len() == 1,
        telegram_only: factors == [Factor::Telegram],
        telegram_accounts: telegram_accounts
            .into_iter()
            .map(|a| TelegramRow {
                id: a.telegram_id,
                linked: moment(t.lang, a.linked_at),
                remove_confirm: fill(t.telegram.remove_confirm, a.label()),
                label: a.label(),
            })
            .collect(),
        passkeys_available: state.webauthn.is_some(),
        devices: device_rows,
        device_is_last,
        device_name,
        device_name_max: webauthn::NAME_MAX,
        totp_on,
        totp_is_last: totp_on && factors.len() == 1,
        email_on,
        email_is_last: email_on && factors.len() == 1,
        has_email: !identity.user.email.is_empty(),
        email_address: &identity.user.email,
        phone_enabled: state.phone.is_some(),
        phone_numbers: crate::mfa::phone::numbers(state.store.as_ref(), username)
            .await?
            .into_iter()
            .map(|n| (n.number, n.confirmed))
            .collect(),
        mail_enabled: state.mailer.enabled(),
        two_factor_on: !factors.is_empty(),
        backup_left: backup::remaining(state.store.as_ref(), username).await?,
        sessions: rows,
        trust_offered: state.config.second_factor.trusted_device_days > 0,
        activity_on: state.config.activity_days > 0,
        activity_intro: t.activity_intro(state.config.activity_days),
        activity,
        trusted,
        min_length: state.config.password.min_length,
    };
    Ok(csrf.attach(html(status, render(&page))))
}

pub(crate) fn done(req: &Request, key: &str) -> Response {
    redirect(
        StatusCode::SEE_OTHER,
        &format!("{}{}?done={key}", req.mount, routes::SETTINGS),
    )
}

/// `GET /settings`.
pub async fn page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => Ok(response),
        Gate::Established(identity) => {
            settings_page(state, req, t, &identity, StatusCode::OK, None).await
        }
    }
}

/// The settings section (its element id) a settings form posts from.
fn section_of(path: &str) -> &'static str {
    match path
        .strip_prefix("/settings/")
        .and_then(|rest| rest.split('/').next())
    {
        Some("totp") => "totp",
        Some("backup") => "backup",
        Some("sessions") => "sessions",
        Some("password") => "password",
        Some("address") => "address",
        Some("email") => "email",
        Some("phone") => "numbers",
        Some("webauthn") => "passkeys",
        Some("telegram") => "telegram",
        Some("devices") => "trusted",
        _ => "",
    }
}

/// How many recent events the settings page lists.
const ACTIVITY_SHOWN: usize = 30;

/// One kept event in words: "Signed in: Password + Authenticator app".
fn activity_text(t: &'static Texts, entry: &crate::activity::Entry) -> String {
    let what = match entry.event.as_str() {
        "login" => t.activity_login,
        "login_failed" => t.activity_login_failed,
        "login_refused_banned" | "second_factor_refused_banned" => t.activity_banned,
        "second_factor_failed" => t.activity_second_factor_failed,
        "telegram_refused_not_me" => t.activity_telegram_not_me,
        "factor_enabled" => t.activity_factor_on,
        "factor_disabled" => t.activity_factor_off,
        "two_factor_reset" => t.activity_two_factor_reset,
        "password_changed" => t.activity_password_changed,
        "password_reset_used" => t.activity_password_reset,
        "session_ended" | "sessions_ended" | "sessions_revoked" => t.activity_sessions_ended,
        "backup_codes_generated" => t.activity_backup_codes,
        "device_trusted" => t.activity_device_trusted,
        "trusted_devices_revoked" | "trusted_device_forgotten" => t.activity_devices_forgotten,
        "new_device_alert" => t.activity_new_device_alert,
        other => other,
    };
    let detail = match entry.event.as_str() {
        // A sign-in without a named method was the password alone.
        "login" if entry.detail.is_empty() => t.password.to_string(),
        "login" if entry.detail == "passkey" => t.passkeys.method.to_string(),
        "login" => method_names(t, &format!("password+{}", entry.detail)),
        "second_factor_failed" | "factor_enabled" | "factor_disabled" => {
            method_names(t, &entry.detail)
        }
        _ => String::new(),
    };
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

/// How a session signed in, in words: "Password + Authenticator app".
fn method_names(t: &'static Texts, method: &str) -> String {
    method
        .split('+')
        .filter(|m| !m.is_empty())
        .map(|m| match m {
            "password" => t.password,
            "phone" => t.phone_title,
            crate::store::TRUSTED_DEVICE => t.method_trusted_device,
            other => mfa::Method::parse(other).map_or(other, |m| crate::portal::method_label(t, m)),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The page's header line: "Two-step verification: on (Authenticator app, Passkey ×2)",
/// or off with the one next step recommended (a passkey where offered, else the app).
fn two_step_summary(
    state: &AppState,
    t: &'static Texts,
    factors: &[Factor],
    passkeys: usize,
) -> (String, Option<&'static str>) {
    if factors.is_empty() {
        let next = if state.webauthn.is_some() {
            t.summary_recommend_passkey
        } else {
            t.summary_recommend_app
        };
        return (t.summary_off.to_string(), Some(next));
    }
    let names: Vec<String> = factors
        .iter()
        // A factor whose service was removed from the configuration is not offered.
        .filter(|f| match f {
            Factor::Webauthn => state.webauthn.is_some(),
            Factor::Telegram => state.telegram.is_some(),
            Factor::Totp | Factor::Email => true,
        })
        .map(|f| match f {
            Factor::Webauthn if passkeys > 1 => format!("{} ×{passkeys}", t.passkeys.method),
            Factor::Webauthn => t.passkeys.method.to_string(),
            Factor::Totp => t.method_totp.to_string(),
            Factor::Email => t.method_email.to_string(),
            Factor::Telegram => t.telegram.method.to_string(),
        })
        .collect();
    (fill(t.summary_on, names.join(", ")), None)
}

/// Sends the user a security notice (see [`mfa::security_notice`]).
pub async fn notice(state: &AppState, user: &crate::store::User, t: &'static Texts, line: &str) {
    mfa::security_notice(
        state.store.as_ref(),
        &state.mailer,
        state.telegram.as_ref(),
        user,
        t,
        line,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_recognised_in_any_case() {
        assert!(is_common_password("Password123"));
        assert!(is_common_password("qwerty"));
        assert!(!is_common_password("correct horse battery"));
    }

    #[test]
    fn devices_are_described_from_user_agents() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        assert_eq!(describe_device("en", firefox), "Firefox 120 on Linux");
        assert_eq!(describe_device("uk", firefox), "Firefox 120 на Linux");
        assert_eq!(describe_device("en", ""), "Unknown device");
        assert_eq!(describe_device("uk", ""), "Невідомий пристрій");
    }

    #[test]
    fn times_are_shown_to_the_minute_in_utc_in_the_readers_language() {
        let en = moment("en", 1_700_000_000);
        assert_eq!(en.text, "14 November 2023, 22:13 UTC");
        assert_eq!(en.iso, "2023-11-14T22:13:20Z");
        assert_eq!(
            moment("uk", 1_700_000_000).text,
            "14 листопада 2023, 22:13 UTC"
        );
    }
}
