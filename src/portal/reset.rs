//! "Forgot password": a one-time link by email, then a new password.
//!
//! The answer to a request is the same whether or not an account matched. The link's
//! token is random, stored only as a keyed hash, valid `password_reset.link_lifetime`
//! and consumed atomically. Requests are limited per account and per client IP. Using
//! a link ends every session and, as the providers we model do, switches every second
//! factor off (`password_reset.disables_second_factors`); the user is told on the page
//! and by email.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::basics::{now, random_token};
use crate::error::Result;
use crate::http::{add_cookie, html, Request, Response};
use crate::mfa;
use crate::notify::email::Letter;
use crate::portal::common::{check_csrf, csrf_for};
use crate::portal::pages::{render, ForgotPage, ResetPage};
use crate::portal::routes;
use crate::portal::settings::{new_password_problem, notice};
use crate::state::AppState;
use crate::store::{Timestamp, User};
use crate::texts::Texts;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResetToken {
    username: String,
    expires_at: Timestamp,
}

fn token_key(state: &AppState, token: &str) -> String {
    format!("reset\0{}", state.code_hasher.hash(token, "password-reset"))
}

/// Whether the login page should offer the link.
pub fn offered(state: &AppState) -> bool {
    state.config.password_reset.enabled && state.mailer.enabled()
}

/// The public base of the portal pages for links in emails, from configuration only:
/// the portal URL on the portal host; in proxy mode the `public_url` of the panel the
/// request came to. The request's `Host` only picks among configured panels; it never
/// becomes part of a link (or an attacker could point a victim's link at their host).
pub(crate) fn public_base(state: &AppState, req: &Request) -> Option<String> {
    if req.mount.is_empty() {
        return state
            .config
            .portal_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_string());
    }
    let host = crate::http::target::parse_authority(req.header("host")?).ok()?;
    state
        .config
        .upstreams
        .iter()
        .find(|u| u.serves(host.host()))?
        .public_url
        .as_ref()
        .map(|base| format!("{base}{}", req.mount))
}

fn forgot_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    status: StatusCode,
    info: Option<String>,
) -> Response {
    let csrf = csrf_for(state, req);
    let page = ForgotPage {
        t,
        title: t.forgot_title,
        mount: req.mount,
        csrf: &csrf.token,
        info,
    };
    csrf.attach(html(status, render(&page)))
}

/// `GET /forgot`.
pub async fn forgot(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    if !offered(state) {
        return Ok(crate::portal::message(
            StatusCode::NOT_FOUND,
            t,
            req.mount,
            t.not_found_title,
            t.not_found,
        ));
    }
    Ok(forgot_page(state, req, t, StatusCode::OK, None))
}

async fn find_account(state: &AppState, who: &str) -> Result<Option<User>> {
    let who = who.trim().to_lowercase();
    if who.is_empty() {
        return Ok(None);
    }
    if let Some(user) = state.store.get_user(&who).await? {
        return Ok(Some(user));
    }
    Ok(state
        .store
        .list_users()
        .await?
        .into_iter()
        .find(|u| !u.email.is_empty() && u.email.to_lowercase() == who))
}

/// `POST /forgot`: mails a link when an account matches; the same answer either way.
pub async fn request(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    if !offered(state) {
        return forgot(state, req, t).await;
    }
    check_csrf(state, req)?;
    // An account name or address; anything longer than any of them is cut.
    let who: String = req
        .form()
        .get("who")
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    let minutes = state
        .config
        .password_reset
        .link_lifetime
        .as_secs()
        .div_ceil(60);
    let answer = t.forgot_sent(minutes);
    let user = find_account(state, &who)
        .await?
        .filter(|u| !u.disabled && !u.email.is_empty());
    // Limited by what was asked for, matched or not, so that the limit itself does
    // not tell which accounts exist.
    let keys = vec![
        format!("ip:{}", req.ip_text()),
        format!("who:{}", who.trim().to_lowercase()),
    ];
    if let Some(left) = crate::portal::common::banned_for(&state.reset_limiter, &keys).await {
        audit!(
            "password_reset_refused_rate",
            ip = req.ip_text(),
            seconds_left = left
        );
        return Ok(forgot_page(state, req, t, StatusCode::OK, Some(answer)));
    }
    state.reset_limiter.record_failure(&keys, now()).await?;
    // The same work whether or not an account matched (a token written to the store,
    // already expired when nobody matched, and swept later), so the answer's timing
    // does not tell which accounts exist.
    let token = random_token(32);
    let matched = user.zip(public_base(state, req));
    let record = ResetToken {
        username: matched
            .as_ref()
            .map(|(u, _)| u.username.clone())
            .unwrap_or_default(),
        expires_at: match matched {
            Some(_) => now() + state.config.password_reset.link_lifetime.as_secs(),
            None => now(),
        },
    };
    crate::store::put_token(
        state.store.as_ref(),
        &token_key(state, &token),
        &record,
        None,
    )
    .await?;
    let Some((user, base)) = matched else {
        audit!(
            "password_reset_requested",
            matched = false,
            ip = req.ip_text()
        );
        return Ok(forgot_page(state, req, t, StatusCode::OK, Some(answer)));
    };
    let link = format!("{base}{}?token={token}", routes::RESET);
    let mut lines = vec![t.email_reset_line(minutes)];
    if state.config.password_reset.disables_second_factors
        && mfa::has_second_factor(state.store.as_ref(), &user.username).await?
    {
        lines.push(t.email_reset_2fa_line.into());
    }
    lines.push(t.email_reset_ignore.into());
    state
        .mailer
        .send_later(
            &user.email,
            Letter {
                t,
                subject: t.email_reset_subject.into(),
                lines,
                code: None,
                link: Some(&link),
            },
        )
        .await;
    audit!(
        "password_reset_requested",
        matched = true,
        user = user.username,
        ip = req.ip_text()
    );
    Ok(forgot_page(state, req, t, StatusCode::OK, Some(answer)))
}

async fn valid_token(state: &AppState, token: &str) -> Result<Option<(Vec<u8>, ResetToken)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let key = token_key(state, token);
    let Some(raw) = state.store.get_token(&key).await? else {
        return Ok(None);
    };
    let record: ResetToken = serde_json::from_slice(&raw)?;
    Ok((record.expires_at > now()).then_some((raw, record)))
}

/// The answer to a reset link that is unknown, used or expired (or whose account is gone).
fn link_invalid(state: &AppState, req: &Request, t: &'static Texts) -> Response {
    reset_page(
        state,
        req,
        t,
        StatusCode::GONE,
        "",
        Some(t.reset_invalid.into()),
        None,
    )
}

fn reset_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    status: StatusCode,
    token: &str,
    error: Option<String>,
    done: Option<Vec<&'static str>>,
) -> Response {
    let csrf = csrf_for(state, req);
    let page = ResetPage {
        t,
        title: t.reset_title,
        mount: req.mount,
        csrf: &csrf.token,
        token,
        warn_2fa: state.config.password_reset.disables_second_factors,
        min_length: state.config.password.min_length,
        error,
        done,
    };
    csrf.attach(html(status, render(&page)))
}

/// `GET /reset?token=`: the new-password form, if the link is still good.
pub async fn reset_form(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let token = req.query_param("token").unwrap_or_default();
    if valid_token(state, &token).await?.is_none() {
        return Ok(link_invalid(state, req, t));
    }
    Ok(reset_page(
        state,
        req,
        t,
        StatusCode::OK,
        &token,
        None,
        None,
    ))
}

/// `POST /reset`: sets the password, ends every session, switches 2FA off.
pub async fn reset_submit(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    check_csrf(state, req)?;
    let form = req.form();
    let token = form.get("token").unwrap_or("").to_string();
    let new = form.get("new_password").unwrap_or("").to_string();
    let repeat = form.get("repeat_password").unwrap_or("");
    let Some((raw, record)) = valid_token(state, &token).await? else {
        return Ok(link_invalid(state, req, t));
    };
    let problem = new_password_problem(state, t, &new, repeat, &record.username);
    if let Some(problem) = problem {
        return Ok(reset_page(
            state,
            req,
            t,
            StatusCode::BAD_REQUEST,
            &token,
            Some(problem),
            None,
        ));
    }
    // Consume the token first: a link works once, even if two tabs race.
    if !state
        .store
        .swap_token(&token_key(state, &token), Some(&raw), None, None)
        .await?
    {
        return Ok(link_invalid(state, req, t));
    }
    let Some(mut user) = state.store.get_user(&record.username).await? else {
        return Ok(link_invalid(state, req, t));
    };
    let hash = state.passwords.hash(new).await?;
    // Only the password, atomically, on the record as it is now; every session ends in
    // the same write.
    let Some((updated, _, ended)) =
        crate::auth::session::end_sessions(state.store.as_ref(), &user.username, None, &mut |u| {
            u.password_hash = hash.clone();
            u.trust_generation += 1;
        })
        .await?
    else {
        return Ok(link_invalid(state, req, t));
    };
    user = updated;
    let mut done = vec![t.reset_done];
    let had_2fa = mfa::has_second_factor(state.store.as_ref(), &user.username).await?;
    if state.config.password_reset.disables_second_factors && had_2fa {
        mfa::reset(state.store.as_ref(), &user.username, "password_reset").await?;
        done.push(t.reset_done_2fa);
    }
    audit!(
        "password_reset_used",
        user = user.username,
        ip = req.ip_text(),
        sessions_ended = ended,
        second_factors_off = had_2fa
    );
    notice(state, &user, t, t.notice_reset_used).await;
    let mut response = reset_page(state, req, t, StatusCode::OK, "", None, Some(done));
    add_cookie(&mut response, &state.sessions.clear_cookie());
    Ok(response)
}

/// Removes expired reset tokens (called by the housekeeping service).
pub async fn sweep_expired(store: &dyn crate::store::Store, now: Timestamp) {
    let Ok(entries) = store.tokens_with_prefix("").await else {
        return;
    };
    for (key, raw) in entries
        .into_iter()
        .filter(|(k, _)| k.starts_with("reset\0"))
    {
        if serde_json::from_slice::<ResetToken>(&raw).is_ok_and(|t| t.expires_at <= now) {
            let _ = store.delete_token(&key).await;
        }
    }
}
