//! The second login step: the user picks one of their enabled methods (the last one
//! used is preselected) and proves it. Success raises the session to two factors under
//! a new id; failures count toward the same brute-force limits as passwords.

use http::StatusCode;

use crate::audit;
use crate::auth::limiter::{login_keys, user_key};
use crate::auth::session::Identity;
use crate::basics::now;
use crate::error::Result;
use crate::http::{add_cookie, html, redirect, Request, Response};
use crate::mfa::{self, email, Method, Rejection};
use crate::notify::email::Delivery;
use crate::portal::common::{
    attempt_failed, begin_attempt, check_csrf, csrf_for, current_session, onwards, rd_query,
};
use crate::portal::pages::{render, MethodLink, SecondStepPage};
use crate::portal::routes;
use crate::state::AppState;
use crate::store::AuthLevel;
use crate::texts::{banned_message, fill, Texts};

pub(crate) fn label(t: &'static Texts, method: Method) -> &'static str {
    match method {
        Method::Totp => t.method_totp,
        Method::Email => t.method_email,
        Method::Webauthn => t.passkeys.method,
        Method::Telegram => t.telegram.method,
        Method::BackupCode => t.method_backup,
    }
}

fn code_label(t: &'static Texts, method: Method) -> &'static str {
    match method {
        Method::Totp => t.totp_code_label,
        Method::Email => t.email_code_label,
        Method::Webauthn => t.passkeys.step_button,
        Method::Telegram => t.telegram.step_continue,
        Method::BackupCode => t.backup_code_label,
    }
}

fn rejection_text(t: &'static Texts, rejection: Rejection) -> (String, Option<&'static str>) {
    match rejection {
        Rejection::Wrong => (t.wrong_code.into(), None),
        Rejection::Replayed => (t.replayed_code.into(), None),
        Rejection::Dead => (t.email_code_dead.into(), None),
        Rejection::Telegram(status) => (
            crate::portal::telegram::rejection_text(t, status).into(),
            None,
        ),
        Rejection::Webauthn(refusal) => (
            crate::portal::passkeys::refusal_text(t, refusal).into(),
            None,
        ),
        Rejection::ClockOff { seconds } => {
            let minutes = (seconds.unsigned_abs()).div_ceil(60).max(1);
            let text = if seconds > 0 {
                t.clock_ahead(minutes)
            } else {
                t.clock_behind(minutes)
            };
            (text, Some(t.clock_fix))
        }
    }
}

struct View<'a> {
    rd: &'a str,
    method: Option<Method>,
    error: Option<String>,
    hint: Option<&'static str>,
}

async fn show(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    status: StatusCode,
    view: View<'_>,
) -> Result<Response> {
    let username = &identity.user.username;
    let session_id = &identity.session.id;
    let methods = mfa::methods_for(state, username).await?;
    let current = view
        .method
        .filter(|m| methods.contains(m))
        .or_else(|| mfa::strongest(&methods))
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
        numeric: current != Method::BackupCode,
        error: view.error,
        hint: view.hint,
        email_send: current == Method::Email,
        send_label: if req.query_param("email").is_some() {
            t.email_send_again
        } else {
            t.email_send_code
        },
        phone: crate::portal::phone_step::offered(state, username).await?,
        trust_label: match crate::portal::devices::trust_days(state) {
            0 => None,
            days => Some(t.trust_device(days)),
        },
        rd_query: rd_query(view.rd),
        webauthn_options: if current == Method::Webauthn && state.webauthn.is_some() {
            mfa::webauthn::second_step_start(state, username, session_id, now())
                .await?
                .map(|(options, id)| serde_json::to_string(&options).map(|o| (o, id)))
                .transpose()?
        } else {
            None
        },
        telegram: if current == Method::Telegram && state.telegram.is_some() {
            Some(crate::portal::telegram::step_view(state, req, t, session_id).await?)
        } else {
            None
        },
        info: if current == Method::Email {
            email_status(state, req, t, username).await?
        } else {
            None
        },
    };
    Ok(csrf.attach(html(status, render(&page))))
}

/// The line about the last emailed code, from `?email=` after a send.
async fn email_status(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    username: &str,
) -> Result<Option<String>> {
    let address = state
        .store
        .get_user(username)
        .await?
        .map(|u| crate::notify::email::mask(&u.email))
        .unwrap_or_default();
    Ok(match req.query_param("email").as_deref() {
        Some("sent") => Some(fill(t.email_sent_to, address)),
        Some("failed") => Some(t.email_not_sent.to_string()),
        Some("cooldown") => {
            Some(t.email_cooldown(email::cooldown_left(state, username, now()).await?.max(1)))
        }
        Some("cap") => Some(t.email_hourly_cap.to_string()),
        Some("no_address") => Some(t.email_no_address.to_string()),
        _ => None,
    })
}

/// `POST /2fa/email`: emails a login code, then back to the step with what happened.
pub async fn send_email(state: &AppState, req: &Request, _t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("");
    let Some(identity) = current_session(state, req)
        .await?
        .filter(|i| i.session.second_step_open())
    else {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}/{}", req.mount, rd_query(rd)),
        ));
    };
    check_csrf(state, req)?;
    if !email::is_enabled(state.store.as_ref(), &identity.user.username).await? {
        return Ok(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(rd)),
        ));
    }
    let t = crate::portal::common::texts_of(state, &req.headers);
    let status =
        match email::send_code(state, &identity.user, email::Purpose::Login, t, now()).await? {
            email::SendOutcome::Sent {
                delivery: Delivery::Failed | Delivery::Disabled,
                ..
            } => "failed",
            email::SendOutcome::Sent { .. } => "sent",
            email::SendOutcome::Cooldown(_) => "cooldown",
            email::SendOutcome::HourlyCap => "cap",
            email::SendOutcome::NoAddress => "no_address",
        };
    let rd_part = rd_query(rd).replacen('?', "&", 1);
    Ok(redirect(
        StatusCode::SEE_OTHER,
        &format!(
            "{}{}?method=email&email={status}{rd_part}",
            req.mount,
            routes::SECOND_STEP
        ),
    ))
}

/// `GET /2fa`: the second step for a session that owes it.
pub async fn page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let rd = req.query_param("rd").unwrap_or_default();
    match current_session(state, req).await? {
        Some(i) if i.session.second_step_open() => {
            let method = req.query_param("method").as_deref().and_then(Method::parse);
            show(
                state,
                req,
                t,
                &i,
                StatusCode::OK,
                View {
                    rd: &rd,
                    method,
                    error: None,
                    hint: None,
                },
            )
            .await
        }
        Some(_) => Ok(redirect(StatusCode::FOUND, &onwards(state, &rd))),
        None => Ok(redirect(
            StatusCode::FOUND,
            &format!("{}/{}", req.mount, rd_query(&rd)),
        )),
    }
}

/// `POST /2fa`: checks the code for the chosen method.
pub async fn submit(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("");
    let Some(identity) = current_session(state, req)
        .await?
        .filter(|i| i.session.second_step_open())
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
            &identity,
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
        return again(StatusCode::FORBIDDEN, t.csrf_failed.into(), None).await;
    }
    let offered = mfa::methods_for(state, &username).await;
    let Some(method) = method.filter(|m| offered.as_ref().is_ok_and(|all| all.contains(m))) else {
        return again(StatusCode::BAD_REQUEST, t.wrong_code.into(), None).await;
    };
    let ip = req.ip_text();
    let keys = login_keys(&username, req.client_ip);
    let attempt = match begin_attempt(state, &keys).await? {
        Ok(attempt) => attempt,
        Err(left) => {
            audit!("second_factor_refused_banned", user = username, ip = ip);
            return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left), None).await;
        }
    };
    let code = form.get("code").unwrap_or("");
    let session = mfa::StepSession {
        id: &identity.session.id,
        ceremony: form.get("ceremony").unwrap_or(""),
    };
    match mfa::verify(state, &username, session, method, code, now()).await? {
        Ok(()) => {
            if let Err(left) = attempt.succeeded(&[user_key(&username)], now()).await? {
                audit!("second_factor_refused_banned", user = username, ip = ip);
                return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left), None).await;
            }
            state.metrics.second_factor_success.inc();

            // Only this field, atomically: a stale copy of the user must never be
            // written back over a change made meanwhile (a disable, a new password).
            state
                .store
                .update_user(&username, &mut |u| {
                    u.last_method = Some(method.id().to_string());
                })
                .await?;
            let session = state
                .sessions
                .second_step_passed(&identity.session, method.id(), now())
                .await?;
            // Trusted only once the session is made (a revocation meanwhile wins).
            let browser = if form.get("trust").is_some() {
                crate::portal::devices::trust(state, req, &identity.user).await?
            } else {
                crate::portal::devices::browser(state, req)
            };
            audit!(
                "login",
                user = username,
                ip = ip,
                level = "two_factor",
                method = method.id(),
                session = &session.id[..8]
            );
            // A backup code used: say how many are left before going on.
            let next = if method == Method::BackupCode {
                format!(
                    "{}{}{}",
                    req.mount,
                    routes::SECOND_STEP_BACKUP_USED,
                    rd_query(rd)
                )
            } else {
                onwards(state, rd)
            };
            let mut response = redirect(StatusCode::SEE_OTHER, &next);
            add_cookie(&mut response, &state.sessions.set_cookie(&session));
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
        Err(rejection @ Rejection::Telegram(mfa::telegram::Status::Pending)) => {
            // "Continue" pressed before the tap in Telegram: not a wrong answer.
            attempt.withdrawn().await?;
            let (text, hint) = rejection_text(t, rejection);
            again(StatusCode::ACCEPTED, text, hint).await
        }
        Err(rejection) => {
            state.metrics.second_factor_failure.inc();
            audit!(
                "second_factor_failed",
                user = username,
                ip = ip,
                method = method.id(),
                reason = format!("{rejection:?}")
            );
            if let Some(left) = attempt_failed(state, attempt, &keys, &ip).await {
                return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left), None).await;
            }
            let (text, hint) = rejection_text(t, rejection);
            again(StatusCode::UNAUTHORIZED, text, hint).await
        }
    }
}

/// `GET /2fa/backup-used`: after a sign-in with a backup code, how many are left, a
/// warning at one or none with the way to new codes, and the way on.
pub async fn backup_used(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let rd = req.query_param("rd").unwrap_or_default();
    let identity = match current_session(state, req).await? {
        Some(i) if i.session.level >= AuthLevel::OneFactor => i,
        // The password alone shows nothing of the account: the second step first.
        Some(_) => {
            return Ok(redirect(
                StatusCode::FOUND,
                &format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(&rd)),
            ))
        }
        None => {
            return Ok(redirect(
                StatusCode::FOUND,
                &format!("{}/{}", req.mount, rd_query(&rd)),
            ))
        }
    };
    let left = mfa::backup::remaining(state.store.as_ref(), &identity.user.username).await?;
    let warning = match left {
        0 => Some(t.backup_used_none),
        1 => Some(t.backup_used_one),
        _ => None,
    };
    let page = crate::portal::pages::BackupUsedPage {
        t,
        title: t.backup_used_title,
        mount: req.mount,
        left,
        left_text: fill(t.backup_used_left, left),
        warning,
        onwards: onwards(state, &rd),
    };
    Ok(html(StatusCode::OK, render(&page)))
}
