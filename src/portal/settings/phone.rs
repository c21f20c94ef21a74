//! Phone numbers for calls and SMS at the second step.

use super::*;

/// `POST /settings/phone/add`: texts a code to a new number.
pub async fn phone_add(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_PHONE_ADD);
    let text = req.form().get("number").unwrap_or("").to_string();
    match crate::mfa::phone::add_number(
        state,
        &identity.user,
        &text,
        t.number_sms_text,
        &req.ip_text(),
        now(),
    )
    .await?
    {
        Ok(number) => Ok(code_page(
            state,
            req,
            t,
            CodeFor::Phone,
            StatusCode::OK,
            Some(fill(t.number_code_sent, crate::phone_number::mask(&number))),
            None,
        )),
        Err(refusal) => {
            let text = match refusal {
                crate::mfa::phone::Refusal::Invalid => t.number_invalid,
                crate::mfa::phone::Refusal::Taken => t.number_taken,
                crate::mfa::phone::Refusal::Limited => t.phone_limited,
                crate::mfa::phone::Refusal::Failed => t.phone_failed,
            };
            settings_page(
                state,
                req,
                t,
                &identity,
                StatusCode::BAD_REQUEST,
                Some(text.into()),
            )
            .await
        }
    }
}

/// `POST /settings/phone/confirm`: the SMS code makes the number count.
pub async fn phone_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_PHONE_CONFIRM);
    let code = req.form().get("code").unwrap_or("").to_string();
    match crate::mfa::phone::confirm_number(state, &identity.user.username, &code, now()).await? {
        Ok(crate::mfa::phone::CodeResult::Accepted) => Ok(done(req, "number_added")),
        Ok(other) => Ok(code_retry(state, req, t, CodeFor::Phone, other)),
        Err(_) => {
            settings_page(
                state,
                req,
                t,
                &identity,
                StatusCode::CONFLICT,
                Some(t.number_taken.into()),
            )
            .await
        }
    }
}

/// `POST /settings/phone/remove`.
pub async fn phone_remove(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_PHONE_REMOVE);
    let number = req.form().get("number").unwrap_or("").to_string();
    crate::mfa::phone::remove_number(state, &identity.user.username, &number).await?;
    Ok(done(req, "number_removed"))
}
