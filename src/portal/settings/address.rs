//! Email: codes by email as a factor, and changing the account's address.

use super::*;

/// `POST /settings/email/start`: mails a code to the account's address.
pub async fn email_start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_EMAIL_START);
    if email::is_enabled(state.store.as_ref(), &identity.user.username).await? {
        return Ok(done(req, "email_on"));
    }
    let (info, error) =
        match email::send_code(state, &identity.user, email::Purpose::Confirm, t, now()).await? {
            email::SendOutcome::NoAddress => {
                return settings_page(
                    state,
                    req,
                    t,
                    &identity,
                    StatusCode::BAD_REQUEST,
                    Some(t.email_no_address.into()),
                )
                .await
            }
            email::SendOutcome::Sent {
                delivery: Delivery::Failed | Delivery::Disabled,
                ..
            } => (None, Some(t.email_not_sent.to_string())),
            email::SendOutcome::Sent { to, .. } => (Some(fill(t.email_sent_to, to)), None),
            email::SendOutcome::Cooldown(secs) => (None, Some(t.email_cooldown(secs))),
            email::SendOutcome::HourlyCap => (None, Some(t.email_hourly_cap.to_string())),
        };
    Ok(code_page(
        state,
        req,
        t,
        CodeFor::EnableEmail,
        StatusCode::OK,
        info,
        error,
    ))
}

/// What an emailed code on the settings pages is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeFor {
    EnableEmail,
    NewAddress,
    Phone,
}

/// The code page again after a wrong or dead code.
pub(super) fn code_retry(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    purpose: CodeFor,
    result: mfa::CodeResult,
) -> Response {
    let text = if result == mfa::CodeResult::Dead {
        t.email_code_dead
    } else {
        t.wrong_code
    };
    code_page(
        state,
        req,
        t,
        purpose,
        StatusCode::BAD_REQUEST,
        None,
        Some(text.into()),
    )
}

pub(super) fn code_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    purpose: CodeFor,
    status: StatusCode,
    info: Option<String>,
    error: Option<String>,
) -> Response {
    let rd = req.form().get("rd").unwrap_or("").to_string();
    let csrf = csrf_for(state, req);
    let (title, action, resend) = match purpose {
        CodeFor::EnableEmail => (t.email_confirm_title, routes::SETTINGS_EMAIL_CONFIRM, true),
        CodeFor::NewAddress => (
            t.address_code_title,
            routes::SETTINGS_ADDRESS_CONFIRM,
            false,
        ),
        CodeFor::Phone => (t.number_code_title, routes::SETTINGS_PHONE_CONFIRM, false),
    };
    let page = EmailConfirmPage {
        t,
        title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: &rd,
        action,
        resend,
        info,
        error,
    };
    csrf.attach(html(status, render(&page)))
}

/// `POST /settings/email/confirm`: the right code turns email codes on.
pub async fn email_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_EMAIL_CONFIRM);
    let username = identity.user.username.clone();
    let was_first = !mfa::has_second_factor(state.store.as_ref(), &username).await?;
    let code = req.form().get("code").unwrap_or("").to_string();
    match email::check(state, &username, &code, email::Purpose::Confirm, now()).await? {
        email::CodeResult::Accepted => {
            enabled(
                state,
                req,
                t,
                &identity,
                Factor::Email,
                was_first,
                "email_on",
            )
            .await
        }
        other => Ok(code_retry(state, req, t, CodeFor::EnableEmail, other)),
    }
}

/// `POST /settings/address/start`: the password and a new address; a code goes to it.
pub async fn address_start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    let form = req.form();
    let new = form.get("new_address").unwrap_or("").trim().to_string();
    if !crate::notify::email::valid_address(&new) || new.chars().any(|c| c.is_control() || c == ',')
    {
        return settings_page(
            state,
            req,
            t,
            &identity,
            StatusCode::BAD_REQUEST,
            Some(t.address_invalid.into()),
        )
        .await;
    }
    if identity_check_needed(state, &identity, routes::SETTINGS_ADDRESS_START).await? {
        return Ok(ask_identity(
            state,
            req,
            t,
            &identity,
            routes::SETTINGS_ADDRESS_START,
        ));
    }
    let password = form.get("password").unwrap_or("").to_string();
    if let Some(wrong) = wrong_password(
        state,
        req,
        t,
        &identity,
        password,
        "password_confirmation_failed",
    )
    .await?
    {
        return Ok(wrong);
    }
    state
        .sessions
        .password_confirmed(&identity.session, now())
        .await?;
    let (info, error) = match email::send_code_to(
        state,
        &identity.user,
        &new,
        email::Purpose::NewAddress,
        t,
        now(),
    )
    .await?
    {
        email::SendOutcome::Sent {
            delivery: Delivery::Failed | Delivery::Disabled,
            ..
        }
        | email::SendOutcome::NoAddress => (None, Some(t.email_not_sent.to_string())),
        email::SendOutcome::Sent { to, .. } => (Some(fill(t.email_sent_to, to)), None),
        email::SendOutcome::Cooldown(secs) => (None, Some(t.email_cooldown(secs))),
        email::SendOutcome::HourlyCap => (None, Some(t.email_hourly_cap.to_string())),
    };
    Ok(code_page(
        state,
        req,
        t,
        CodeFor::NewAddress,
        StatusCode::OK,
        info,
        error,
    ))
}

/// `POST /settings/address/confirm`: the right code makes the new address the account's;
/// the old one is told.
pub async fn address_confirm(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    if identity_check_needed(state, &identity, routes::SETTINGS_ADDRESS_CONFIRM).await? {
        return Ok(ask_identity(
            state,
            req,
            t,
            &identity,
            routes::SETTINGS_ADDRESS_CONFIRM,
        ));
    }
    let username = identity.user.username.clone();
    let Some(new) = email::pending_new_address(state.store.as_ref(), &username).await? else {
        return Ok(done(req, ""));
    };
    let code = req.form().get("code").unwrap_or("").to_string();
    match email::check(state, &username, &code, email::Purpose::NewAddress, now()).await? {
        email::CodeResult::Accepted => {
            let old = identity.user.email.clone();
            if state
                .store
                .update_user(&username, &mut |u| u.email = new.clone())
                .await?
                .is_none()
            {
                return Err(Error::SessionEnded);
            }
            audit!("email_address_changed", user = username, ip = req.ip_text());
            state
                .mailer
                .send_later(
                    &old,
                    Letter {
                        t,
                        subject: t.notice_subject.into(),
                        lines: vec![
                            fill(t.notice_address_changed, crate::notify::email::mask(&new)),
                            t.notice_not_you.into(),
                        ],
                        code: None,
                        link: None,
                    },
                )
                .await;
            Ok(done(req, "address"))
        }
        other => Ok(code_retry(state, req, t, CodeFor::NewAddress, other)),
    }
}
