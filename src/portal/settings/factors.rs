//! Factors as a whole: turning one off, what happens when one is turned on (the session is
//! raised, the first one ends other sessions and makes backup codes), and new backup codes.

use super::*;

/// Shows freshly made backup codes once.
pub(crate) fn show_codes(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    codes: &[String],
    notice: Option<&'static str>,
    next: String,
) -> Response {
    let text = codes.join("\n") + "\n";
    let download = format!(
        "data:text/plain;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(text)
    );
    let page = BackupCodesPage {
        t,
        title: t.backup_show_title,
        mount: req.mount,
        codes: codes.to_vec(),
        download,
        next,
        notice,
    };
    csrf_for(state, req).attach(html(StatusCode::OK, render(&page)))
}

/// `POST /settings/<factor>/disable`: when it is the last factor, the password is
/// required in the form whatever the reauthentication window.
pub async fn factor_disable(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    factor: Factor,
) -> Result<Response> {
    let action = match factor {
        Factor::Totp => routes::SETTINGS_TOTP_DISABLE,
        Factor::Email => routes::SETTINGS_EMAIL_DISABLE,
        // Devices are removed one by one (`passkeys::delete`); not routed here.
        Factor::Webauthn => routes::SETTINGS_WEBAUTHN_DELETE,
        Factor::Telegram => routes::SETTINGS_TELEGRAM_DISABLE,
    };
    let identity = change!(state, req, t, action);
    let username = identity.user.username.clone();
    let factors = mfa::enabled_factors(state.store.as_ref(), &username).await?;
    let off_key = format!("{}_off", factor.id());
    if !factors.contains(&factor) {
        return Ok(done(req, &off_key));
    }
    let last = factors.len() == 1;
    if last {
        if let Some(wrong) = password_in_form(state, req, t, &identity).await? {
            return Ok(wrong);
        }
    }
    mfa::disable_factor(state, &username, factor, "user").await?;
    if last {
        notice(state, &identity.user, t, t.notice_2fa_off).await;
    }
    Ok(done(req, if last { "2fa_off" } else { &off_key }))
}

/// After a factor was turned on from this session: raise the session, apply the
/// first-factor rules, show the backup codes once when they are new.
pub(crate) async fn enabled(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    factor: Factor,
    was_first: bool,
    done_key: &str,
) -> Result<Response> {
    crate::crash::point("factor-saved");
    let session = state
        .sessions
        .upgrade(
            &identity.session,
            AuthLevel::TwoFactor,
            factor.method().id(),
            now(),
        )
        .await?;
    let codes = mfa::factor_enabled(
        state,
        &identity.user.username,
        factor,
        Some(&session),
        was_first,
        now(),
    )
    .await?;
    let rd = req.form().get("rd").unwrap_or("").to_string();
    let next = if rd.is_empty() {
        format!("{}{}?done={done_key}", req.mount, routes::SETTINGS)
    } else {
        onwards(state, &rd)
    };
    let done_text = notice_text(t, done_key);
    let mut response = match codes {
        Some(codes) => {
            notice(state, &identity.user, t, t.notice_2fa_on).await;
            show_codes(state, req, t, &codes, done_text, next)
        }
        None => redirect(StatusCode::SEE_OTHER, &next),
    };
    add_cookie(&mut response, &state.sessions.set_cookie(&session));
    Ok(response)
}

/// `POST /settings/backup/regenerate`: a new set; the old codes stop working.
pub async fn backup_regenerate(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_BACKUP_REGENERATE);
    let username = &identity.user.username;
    if !mfa::has_second_factor(state.store.as_ref(), username).await? {
        return Ok(done(req, ""));
    }
    let codes = backup::generate(state, username, now()).await?;
    notice(state, &identity.user, t, t.notice_backup).await;
    audit!(
        "backup_codes_generated",
        user = username,
        count = codes.len(),
        by = "user"
    );
    Ok(show_codes(
        state,
        req,
        t,
        &codes,
        None,
        format!("{}/settings", req.mount),
    ))
}
