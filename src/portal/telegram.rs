//! Telegram pages: linking accounts from the settings (deep link and QR code, the page
//! learning of the link by long-poll), turning confirmation on and off, unlinking; and
//! at the second step, sending a confirmation and waiting for the tap (long-poll, with a
//! button as fallback). The webhook endpoint for `mode = "webhook"` is here too.

use std::time::Duration;

use http::StatusCode;

use crate::audit;
use crate::auth::session::Identity;
use crate::basics::now;
use crate::error::{Error, Result};
use crate::http::{add_cookie, json, redirect, Request, Response};
use crate::mfa::telegram::{self as tg, Refused, Status};
use crate::mfa::{self, Factor};
use crate::notify::telegram::TelegramBot;
use crate::portal::common::{check_csrf, current_session, established, rd_query, Gate};
use crate::portal::pages::TelegramLink;
use crate::portal::routes;
use crate::portal::settings::{
    authorise_change, change, done, enabled, notice, password_in_form, qr_data_uri, settings_page,
    settings_page_with, show_codes,
};
use crate::state::AppState;
use crate::store::AuthLevel;
use crate::telegram_bot::{expire_attempt, send_attempt};
use crate::texts::{fill, Texts};

/// How long a long-poll request is held.
const HOLD: Duration = Duration::from_secs(20);

fn bot(state: &AppState) -> Result<&TelegramBot> {
    state
        .telegram
        .as_ref()
        .ok_or_else(|| Error::NotFound("telegram is not configured".into()))
}

/// `POST /settings/telegram/link`: the settings page again, its Telegram section showing
/// a one-time deep link to the bot as a link and a QR code; the page then learns of the
/// link (long-poll) without a reload.
pub async fn link(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_TELEGRAM_LINK);
    let bot = bot(state)?;
    let Some(bot_name) = bot.username() else {
        return settings_page(
            state,
            req,
            t,
            &identity,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(t.telegram.unreachable.into()),
        )
        .await;
    };
    let username = &identity.user.username;
    let token = tg::link_start(state, username, &identity.session.id, now()).await?;
    let deep_link = format!("https://t.me/{bot_name}?start={token}");
    let link = TelegramLink {
        qr: qr_data_uri(&deep_link),
        deep_link,
        before: tg::accounts(state.store.as_ref(), username).await?.len(),
    };
    settings_page_with(state, req, t, &identity, StatusCode::OK, None, Some(link)).await
}

/// `GET /settings/telegram/status?before=N`: the linked accounts, answered as soon as
/// there are more than N (or after a while).
pub async fn status(state: &AppState, req: &Request, _t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    let bot = bot(state)?;
    let username = identity.user.username.clone();
    let before: usize = req
        .query_param("before")
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    let mut watch = bot.waiters.watch();
    if tg::accounts(state.store.as_ref(), &username).await?.len() <= before {
        watch.until_decided(&format!("link:{username}"), HOLD).await;
    }
    let accounts = tg::accounts(state.store.as_ref(), &username).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "count": accounts.len(),
            "accounts": accounts.iter().map(|a| a.label()).collect::<Vec<_>>(),
        }),
    ))
}

/// `GET /settings/telegram/linked`: after linking, the backup codes when linking turned
/// 2FA on (once, in the browser that asked), else back to the settings.
pub async fn linked(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    let next = format!("{}{}?done=telegram_linked", req.mount, routes::SETTINGS);
    match tg::take_codes(state, &identity.session.id, now()).await? {
        Some(codes) => {
            let session = state
                .sessions
                .upgrade(&identity.session, AuthLevel::TwoFactor, "telegram", now())
                .await?;
            notice(state, &identity.user, t, t.notice_2fa_on).await;
            let mut response =
                show_codes(state, req, t, &codes, Some(t.telegram.done_linked), next);
            add_cookie(&mut response, &state.sessions.set_cookie(&session));
            Ok(response)
        }
        None => Ok(redirect(StatusCode::SEE_OTHER, &next)),
    }
}

/// `POST /settings/telegram/enable`: confirmation on again with the linked accounts.
pub async fn enable(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_TELEGRAM_ENABLE);
    let username = identity.user.username.clone();
    let was_first = !mfa::has_second_factor(state.store.as_ref(), &username).await?;
    if tg::is_enabled(state.store.as_ref(), &username).await? {
        return Ok(done(req, "telegram_on"));
    }
    if !tg::enable(state.store.as_ref(), &username).await? {
        return Ok(done(req, ""));
    }
    enabled(
        state,
        req,
        t,
        &identity,
        Factor::Telegram,
        was_first,
        "telegram_on",
    )
    .await
}

/// `POST /settings/telegram/remove`: unlinks one account; unlinking the last account of
/// the only factor needs the password and turns 2FA off.
pub async fn remove(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_TELEGRAM_REMOVE);
    let username = identity.user.username.clone();
    let store = state.store.as_ref();
    let Some(id) = req
        .form()
        .get("account")
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return Ok(done(req, ""));
    };
    let accounts = tg::accounts(store, &username).await?;
    if !accounts.iter().any(|a| a.telegram_id == id) {
        return Ok(done(req, ""));
    }
    let was_on = tg::is_enabled(store, &username).await?;
    let ends_2fa = was_on
        && accounts.len() == 1
        && mfa::enabled_factors(store, &username).await? == [Factor::Telegram];
    if ends_2fa {
        if let Some(wrong) = password_in_form(state, req, t, &identity).await? {
            return Ok(wrong);
        }
    }
    let Some((account, left)) = tg::remove(store, &username, id).await? else {
        return Ok(done(req, ""));
    };
    audit!(
        "telegram_unlinked",
        user = username,
        telegram = account.label(),
        by = "user"
    );
    notice(
        state,
        &identity.user,
        t,
        &fill(t.telegram.notice_removed, account.label()),
    )
    .await;
    if left == 0 && was_on {
        mfa::disable_factor(state, &username, Factor::Telegram, "user").await?;
        if ends_2fa {
            notice(state, &identity.user, t, t.notice_2fa_off).await;
            return Ok(done(req, "2fa_off"));
        }
    }
    Ok(done(req, "telegram_removed"))
}

/// The pending session of this request, if it owes Telegram as a method.
async fn pending(state: &AppState, req: &Request) -> Result<Option<Box<Identity>>> {
    Ok(current_session(state, req)
        .await?
        .filter(|i| i.session.second_step_open())
        .map(Box::new))
}

fn step_url(req: &Request, rd: &str, extra: &str) -> String {
    let rd_part = rd_query(rd).replacen('?', "&", 1);
    format!(
        "{}{}?method=telegram{extra}{rd_part}",
        req.mount,
        routes::SECOND_STEP
    )
}

/// `POST /2fa/telegram/start`: sends a confirmation to every linked account (a new one
/// replaces the session's previous one), then back to the step to wait.
pub async fn start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("").to_string();
    let Some(identity) = pending(state, req).await? else {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}/{}", req.mount, rd_query(&rd)),
        ));
    };
    check_csrf(state, req)?;
    let bot = bot(state)?;
    let username = identity.user.username.clone();
    if !tg::is_enabled(state.store.as_ref(), &username).await? {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(&rd)),
        ));
    }
    // The send is counted before it is made: parallel starts cannot pass the cap.
    let budget_key = vec![format!("telegram:{username}")];
    let Ok(send) = bot.budget.begin(&budget_key, now()).await? else {
        audit!(
            "telegram_send_refused_cap",
            user = username,
            ip = req.ip_text()
        );
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &step_url(req, &rd, "&telegram=cap"),
        ));
    };
    if let Some(previous) = tg::attempt_of_session(state, &identity.session.id).await? {
        expire_attempt(state, bot, &previous.id).await;
    }
    // The site named in the message comes from configuration, never from the request.
    let site = crate::portal::reset::public_base(state, req)
        .and_then(|base| url::Url::parse(&base).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let attempt = tg::new_attempt(
        state,
        &username,
        &identity.session.id,
        tg::Origin {
            ip: req.ip_text(),
            user_agent: req.header("user-agent").unwrap_or("").to_string(),
            site,
            lang: t.lang.to_string(),
        },
        now(),
    )
    .await?;
    send.failed(now()).await?;
    if send_attempt(state, bot, &attempt).await == 0 {
        tg::expire(state.store.as_ref(), &attempt.id).await?;
        audit!(
            "telegram_unreachable_at_login",
            user = username,
            ip = req.ip_text()
        );
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &step_url(req, &rd, "&telegram=unreachable"),
        ));
    }
    audit!("telegram_sent", user = username, ip = req.ip_text());
    Ok(redirect(StatusCode::SEE_OTHER, &step_url(req, &rd, "")))
}

/// `GET /2fa/telegram/wait?attempt=ID`: answers when the attempt is decided or expires
/// (or after a while, still pending).
pub async fn wait(state: &AppState, req: &Request, _t: &'static Texts) -> Result<Response> {
    let Some(identity) = pending(state, req).await? else {
        return Ok(json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"status": "signed_out"}),
        ));
    };
    let bot = bot(state)?;
    let id = req.query_param("attempt").unwrap_or_default();
    let mut watch = bot.waiters.watch();
    let read = || async {
        Ok::<_, crate::error::Error>(match tg::attempt(state.store.as_ref(), &id).await? {
            Some((_, a)) if a.session_id == identity.session.id => {
                if a.status == Status::Pending && a.expires_at <= now() {
                    Status::Expired
                } else {
                    a.status
                }
            }
            _ => Status::Expired,
        })
    };
    let mut status = read().await?;
    if status == Status::Pending {
        watch.until_decided(&id, HOLD).await;
        status = read().await?;
    }
    let reason = match status {
        Status::Refused(Refused::WrongNumber) => "wrong_number",
        Status::Refused(Refused::NotMe) => "not_me",
        _ => "",
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"status": status.id(), "reason": reason}),
    ))
}

/// What the second step shows for Telegram.
pub struct StepView {
    /// The pending attempt: its id and number.
    pub attempt: Option<(String, u8)>,
    pub message: Option<&'static str>,
    /// Send a confirmation as soon as the page loads.
    pub autostart: bool,
}

/// The Telegram part of the second step for this session.
pub async fn step_view(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    session_id: &str,
) -> Result<StepView> {
    let message = match req.query_param("telegram").as_deref() {
        Some("unreachable") => Some(t.telegram.unreachable),
        Some("cap") => Some(t.telegram.step_cap),
        Some("wrong_number") => Some(t.telegram.step_refused_wrong),
        Some("not_me") => Some(t.telegram.step_refused_not_me),
        Some("expired") => Some(t.telegram.step_expired),
        _ => None,
    };
    let attempt = tg::attempt_of_session(state, session_id)
        .await?
        .filter(|a| a.status == Status::Pending && a.expires_at > now())
        .map(|a| (a.id, a.number));
    Ok(StepView {
        autostart: attempt.is_none() && message.is_none() && req.method == http::Method::GET,
        attempt,
        message,
    })
}

/// The browser-facing text for a Telegram rejection at `POST /2fa`.
pub fn rejection_text(t: &'static Texts, status: Status) -> &'static str {
    match status {
        Status::Pending => t.telegram.step_pending,
        Status::Refused(Refused::WrongNumber) => t.telegram.step_refused_wrong,
        Status::Refused(Refused::NotMe) => t.telegram.step_refused_not_me,
        Status::Expired | Status::Confirmed | Status::Used => t.telegram.step_expired,
    }
}

/// `POST /telegram/webhook`: updates from Telegram in webhook mode, checked against the
/// secret token.
pub async fn webhook(state: &AppState, req: &Request, _t: &'static Texts) -> Result<Response> {
    let bot = bot(state)?;
    let expected = bot
        .config
        .webhook_secret
        .as_ref()
        .map_or("", |s| s.expose());
    let given = req.header("x-telegram-bot-api-secret-token").unwrap_or("");
    if expected.is_empty() || !crate::crypto::constant_time_eq(expected, given) {
        return Ok(json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"ok": false}),
        ));
    }
    let update: teloxide::types::Update = serde_json::from_slice(&req.body)
        .map_err(|e| Error::BadRequest(format!("not a Telegram update: {e}")))?;
    crate::telegram_bot::handle_update(state, bot, update).await;
    Ok(json(StatusCode::OK, &serde_json::json!({"ok": true})))
}
