//! The second login step: the user picks one of their enabled methods (the last one
//! used is preselected) and proves it. Success raises the session to two factors under
//! a new id; failures count toward the same brute-force limits as passwords.

use http::StatusCode;

use crate::audit;
use crate::auth::limiter::login_keys;
use crate::auth::now;
use crate::error::Result;
use crate::http::{add_cookie, html, redirect, Request, Response};
use crate::mfa::{self, Method, Rejection};
use crate::portal::common::{check_csrf, csrf_for, current_session, onwards, rd_query};
use crate::portal::i18n::{banned_message, fill, Texts};
use crate::portal::pages::{render, MethodLink, SecondStepPage};
use crate::state::AppState;
use crate::store::AuthLevel;

fn label(t: &'static Texts, method: Method) -> &'static str {
    match method {
        Method::Totp => t.method_totp,
        Method::BackupCode => t.method_backup,
    }
}

fn code_label(t: &'static Texts, method: Method) -> &'static str {
    match method {
        Method::Totp => t.totp_code_label,
        Method::BackupCode => t.backup_code_label,
    }
}

fn rejection_text(t: &'static Texts, rejection: Rejection) -> (String, Option<&'static str>) {
    match rejection {
        Rejection::Wrong => (t.wrong_code.into(), None),
        Rejection::Replayed => (t.replayed_code.into(), None),
        Rejection::ClockOff { seconds } => {
            let minutes = (seconds.unsigned_abs()).div_ceil(60).max(1);
            let text = if seconds > 0 {
                t.clock_ahead
            } else {
                t.clock_behind
            };
            (fill(text, minutes), Some(t.clock_fix))
        }
    }
}

struct View<'a> {
    rd: &'a str,
    method: Option<Method>,
    error: Option<String>,
    hint: Option<&'static str>,
}

fn show(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    username: &str,
    last: Option<&str>,
    status: StatusCode,
    view: View<'_>,
) -> Result<Response> {
    let methods = mfa::methods_for(state.store.as_ref(), username)?;
    let current = view
        .method
        .filter(|m| methods.contains(m))
        .or_else(|| last.and_then(Method::parse).filter(|m| methods.contains(m)))
        .or_else(|| methods.first().copied())
        .unwrap_or(Method::BackupCode);
    let csrf = csrf_for(state, req);
    let links: Vec<MethodLink> = methods
        .iter()
        .map(|m| MethodLink {
            id: m.id(),
            label: label(t, *m),
        })
        .collect();
    let rd_link = rd_query(view.rd).replacen('?', "&", 1);
    let page = SecondStepPage {
        t,
        title: t.second_step_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: view.rd,
        rd_link: &rd_link,
        methods: links,
        current: current.id(),
        code_label: code_label(t, current),
        numeric: current == Method::Totp,
        error: view.error,
        hint: view.hint,
    };
    Ok(csrf.attach(html(status, render(&page))))
}

/// `GET /2fa`: the second step for a session that owes it.
pub fn page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let rd = req.query_param("rd").unwrap_or_default();
    match current_session(state, req)? {
        Some(i) if i.session.level == AuthLevel::SecondFactorPending => {
            let method = req.query_param("method").as_deref().and_then(Method::parse);
            show(
                state,
                req,
                t,
                &i.user.username,
                i.user.last_method.as_deref(),
                StatusCode::OK,
                View {
                    rd: &rd,
                    method,
                    error: None,
                    hint: None,
                },
            )
        }
        Some(_) => Ok(redirect(StatusCode::FOUND, &onwards(state, &rd))),
        None => Ok(redirect(
            StatusCode::FOUND,
            &format!("{}/{}", req.mount, rd_query(&rd)),
        )),
    }
}

/// `POST /2fa`: checks the code for the chosen method.
pub fn submit(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("");
    let Some(identity) =
        current_session(state, req)?.filter(|i| i.session.level == AuthLevel::SecondFactorPending)
    else {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}/{}", req.mount, rd_query(rd)),
        ));
    };
    let username = identity.user.username.clone();
    let method = form.get("method").and_then(Method::parse);
    let again = |status, error: String, hint| {
        show(
            state,
            req,
            t,
            &username,
            None,
            status,
            View {
                rd,
                method,
                error: Some(error),
                hint,
            },
        )
    };
    if check_csrf(state, req).is_err() {
        return again(StatusCode::FORBIDDEN, t.csrf_failed.into(), None);
    }
    let Some(method) = method.filter(|m| {
        mfa::methods_for(state.store.as_ref(), &username).is_ok_and(|all| all.contains(m))
    }) else {
        return again(StatusCode::BAD_REQUEST, t.wrong_code.into(), None);
    };
    let ip = req.ip_text();
    let keys = login_keys(&username, req.client_ip);
    if let Some(left) = state.limiter.banned_for(&keys, now()) {
        audit!("second_factor_refused_banned", user = username, ip = ip);
        return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left), None);
    }
    let code = form.get("code").unwrap_or("");
    match mfa::verify(state, &username, method, code, now())? {
        Ok(()) => {
            state.limiter.record_success(&keys);
            let mut user = identity.user.clone();
            user.last_method = Some(method.id().to_string());
            state.store.put_user(&user)?;
            let session = state
                .sessions
                .upgrade(&identity.session, AuthLevel::TwoFactor, now())?;
            audit!(
                "login",
                user = username,
                ip = ip,
                level = "two_factor",
                method = method.id(),
                session = &session.id[..8]
            );
            let mut response = redirect(StatusCode::SEE_OTHER, &onwards(state, rd));
            add_cookie(&mut response, &state.sessions.set_cookie(&session));
            Ok(response)
        }
        Err(rejection) => {
            let newly_banned = state.limiter.record_failure(&keys, now());
            audit!(
                "second_factor_failed",
                user = username,
                ip = ip,
                method = method.id(),
                reason = format!("{rejection:?}")
            );
            for key in &newly_banned {
                audit!(
                    "ban",
                    key = key,
                    ip = ip,
                    seconds = state.config.regulation.ban_time.as_secs()
                );
            }
            if let Some(left) = state.limiter.banned_for(&keys, now()) {
                return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left), None);
            }
            let (text, hint) = rejection_text(t, rejection);
            again(StatusCode::UNAUTHORIZED, text, hint)
        }
    }
}
