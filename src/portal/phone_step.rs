//! The phone reserve method at the second login step. It is offered only to a user
//! who has another factor on and a confirmed number. The page first says what it costs
//! (2FA switches off, the panel is told) and asks for consent before anything is sent;
//! then it places calls (voice or flash, SMS after `max_calls`) and checks the code.
//! Success raises the session to two factors, switches every factor off, deletes the
//! backup codes, queues the recovery hook and mails a notice.

use http::StatusCode;

use crate::audit;
use crate::auth::limiter::{login_keys, user_key};
use crate::basics::now;
use crate::error::Result;
use crate::http::{add_cookie, html, redirect, Request, Response};
use crate::mfa::phone::{self, Channel, CodeResult, Refusal};
use crate::phone_number::mask;
use crate::portal::common::{
    attempt_failed, begin_attempt, check_csrf, csrf_for, current_session, rd_query,
};
use crate::portal::pages::{render, PhoneDonePage, PhoneStepPage};
use crate::portal::routes;
use crate::portal::settings::notice;
use crate::state::AppState;
use crate::texts::{banned_message, fill, Texts};

/// Whether the phone way is on offer for this user.
pub async fn offered(state: &AppState, username: &str) -> Result<bool> {
    Ok(state.phone.is_some()
        && !phone::confirmed_numbers(state.store.as_ref(), username)
            .await?
            .is_empty())
}

fn code_label(t: &'static Texts, channel: Channel) -> &'static str {
    match channel {
        Channel::Voice => t.phone_code_voice,
        Channel::Flash => t.phone_code_flash,
        Channel::Sms => t.phone_code_sms,
    }
}

async fn show(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    username: &str,
    rd: &str,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response> {
    let numbers = phone::confirmed_numbers(state.store.as_ref(), username).await?;
    let chosen = req
        .query_param("n")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|i| numbers.get(i))
        .map(|n| mask(n))
        .unwrap_or_default();
    let info = match req.query_param("sent").as_deref() {
        Some("voice") => Some(fill(t.phone_sent_voice, &chosen)),
        Some("flash") => Some(fill(t.phone_sent_flash, &chosen)),
        Some("sms") => Some(fill(t.phone_sent_sms, &chosen)),
        _ => None,
    };
    let error = error.or_else(|| match req.query_param("sent").as_deref() {
        Some("limited") => Some(t.phone_limited.to_string()),
        Some("failed") => Some(t.phone_failed.to_string()),
        _ => None,
    });
    let channel = phone::current_channel(state.store.as_ref(), username).await?;
    let csrf = csrf_for(state, req);
    let page = PhoneStepPage {
        t,
        title: t.phone_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd,
        numbers: numbers
            .iter()
            .enumerate()
            .map(|(i, n)| (i, mask(n)))
            .collect(),
        info,
        error,
        code_label: channel.map(|c| code_label(t, c)),
    };
    Ok(csrf.attach(html(status, render(&page))))
}

async fn pending_user(
    state: &AppState,
    req: &Request,
) -> Result<Option<crate::auth::session::Identity>> {
    Ok(current_session(state, req)
        .await?
        .filter(|i| i.session.second_step_open()))
}

/// `GET /2fa/phone`.
pub async fn page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let rd = req.query_param("rd").unwrap_or_default();
    match pending_user(state, req).await? {
        Some(i) if offered(state, &i.user.username).await? => {
            show(state, req, t, &i.user.username, &rd, StatusCode::OK, None).await
        }
        _ => Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(&rd)),
        )),
    }
}

/// `POST /2fa/phone/call`: with consent, calls the chosen number.
pub async fn call(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("").to_string();
    let identity = match pending_user(state, req).await? {
        Some(i) if offered(state, &i.user.username).await.unwrap_or(false) => Some(i),
        _ => None,
    };
    let Some(identity) = identity else {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(&rd)),
        ));
    };
    check_csrf(state, req)?;
    if form.get("consent") != Some("1") {
        return show(
            state,
            req,
            t,
            &identity.user.username,
            &rd,
            StatusCode::BAD_REQUEST,
            Some(t.phone_consent_needed.into()),
        )
        .await;
    }
    let numbers = phone::confirmed_numbers(state.store.as_ref(), &identity.user.username).await?;
    let index = form
        .get("number")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let Some(number) = numbers.get(index) else {
        return show(
            state,
            req,
            t,
            &identity.user.username,
            &rd,
            StatusCode::BAD_REQUEST,
            Some(t.number_invalid.into()),
        )
        .await;
    };
    let sent = match phone::call(
        state,
        &identity.user,
        number,
        t.lang,
        t.phone_sms_text,
        &req.ip_text(),
        now(),
    )
    .await?
    {
        Ok(channel) => channel.id(),
        Err(Refusal::Limited) => "limited",
        Err(_) => "failed",
    };
    let rd_part = rd_query(&rd).replacen('?', "&", 1);
    Ok(redirect(
        StatusCode::SEE_OTHER,
        &format!(
            "{}{}?sent={sent}&n={index}{rd_part}",
            req.mount,
            routes::SECOND_STEP_PHONE
        ),
    ))
}

/// `POST /2fa/phone/verify`: the code from the call or SMS.
pub async fn verify(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("").to_string();
    let Some(identity) = pending_user(state, req).await? else {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}/{}", req.mount, rd_query(&rd)),
        ));
    };
    check_csrf(state, req)?;
    let username = identity.user.username.clone();
    let ip = req.ip_text();
    let keys = login_keys(&username, req.client_ip);
    let banned = |left| {
        show(
            state,
            req,
            t,
            &username,
            &rd,
            StatusCode::TOO_MANY_REQUESTS,
            Some(banned_message(t, left)),
        )
    };
    let attempt = match begin_attempt(state, &keys).await? {
        Ok(attempt) => attempt,
        Err(left) => return banned(left).await,
    };
    match phone::verify(state, &username, form.get("code").unwrap_or(""), now()).await? {
        CodeResult::Accepted => {
            if let Err(left) = attempt.succeeded(&[user_key(&username)], now()).await? {
                return banned(left).await;
            }
            state.metrics.second_factor_success.inc();
            let session = state
                .sessions
                .second_step_passed(&identity.session, "phone", now())
                .await?;
            crate::mfa::reset(state.store.as_ref(), &username, "phone_login").await?;
            crate::notify::hook::enqueue(
                state.store.as_ref(),
                state.config.recovery_hook.as_ref(),
                "second_factor_recovered_by_phone",
                &username,
                &ip,
            )
            .await?;
            notice(state, &identity.user, t, t.notice_phone_login).await;
            audit!(
                "login",
                user = username,
                ip = ip,
                level = "two_factor",
                method = "phone",
                session = &session.id[..8]
            );
            let csrf = csrf_for(state, req);
            let page = PhoneDonePage {
                t,
                title: t.phone_done_title,
                mount: req.mount,
            };
            let mut response = csrf.attach(html(StatusCode::OK, render(&page)));
            add_cookie(&mut response, &state.sessions.set_cookie(&session));
            let browser = crate::portal::devices::browser(state, req);
            crate::portal::devices::signed_in(
                state,
                req,
                t,
                &identity.user,
                &session,
                browser,
                &mut response,
            )
            .await;
            Ok(response)
        }
        result => {
            state.metrics.second_factor_failure.inc();
            audit!(
                "second_factor_failed",
                user = username,
                ip = ip,
                method = "phone"
            );
            if let Some(left) = attempt_failed(state, attempt, &keys, &ip).await {
                return show(
                    state,
                    req,
                    t,
                    &username,
                    &rd,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(banned_message(t, left)),
                )
                .await;
            }
            let text = if result == CodeResult::Dead {
                t.email_code_dead
            } else {
                t.wrong_code
            };
            show(
                state,
                req,
                t,
                &username,
                &rd,
                StatusCode::UNAUTHORIZED,
                Some(text.into()),
            )
            .await
        }
    }
}
