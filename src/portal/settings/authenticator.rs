//! The authenticator app: starting the enrolment, its page with the QR code, confirming it.

use super::*;

/// A QR code of `text` as an SVG `data:` URI.
pub(crate) fn qr_data_uri(text: &str) -> String {
    let svg = qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

pub(super) fn enroll_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    enrollment: &totp::Enrollment,
    status: StatusCode,
    error: Option<String>,
    hint: Option<&'static str>,
) -> Response {
    let rd = req
        .form()
        .get("rd")
        .map(str::to_string)
        .or_else(|| req.query_param("rd"))
        .unwrap_or_default();
    let csrf = csrf_for(state, req);
    let grouped = enrollment
        .secret_base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let page = TotpEnrollPage {
        t,
        title: t.totp_enroll_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: &rd,
        uri: &enrollment.uri,
        qr: qr_data_uri(&enrollment.uri),
        secret: grouped,
        error,
        hint,
    };
    csrf.attach(html(status, render(&page)))
}

/// `POST /settings/totp/start`: a new secret, then (by redirect) the enrolment page.
pub async fn totp_start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_TOTP_START);
    if totp::is_enabled(state.store.as_ref(), &identity.user.username).await? {
        return Ok(done(req, "totp_on"));
    }
    totp::enroll_start(state, &identity.user.username, now()).await?;
    let rd = req.form().get("rd").unwrap_or("").to_string();
    Ok(redirect(
        StatusCode::SEE_OTHER,
        &format!("{}/settings/totp{}", req.mount, rd_query(&rd)),
    ))
}

/// `GET /settings/totp`: the pending enrolment (same secret), if any.
pub async fn totp_page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    match totp::pending_enrollment(state, &identity.user.username).await? {
        Some(enrollment) => Ok(enroll_page(
            state,
            req,
            t,
            &enrollment,
            StatusCode::OK,
            None,
            None,
        )),
        None => Ok(done(req, "")),
    }
}

/// `POST /settings/totp/confirm`: a correct code turns the app on.
pub async fn totp_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_TOTP_CONFIRM);
    let username = identity.user.username.clone();
    let was_first = !mfa::has_second_factor(state.store.as_ref(), &username).await?;
    let code = req.form().get("code").unwrap_or("").to_string();
    let Some(enrollment) = totp::pending_enrollment(state, &username).await? else {
        return Ok(done(req, ""));
    };
    let (error, hint) = match totp::enroll_finish(state, &username, &code, now()).await? {
        totp::CodeCheck::Valid { .. } => {
            return enabled(state, req, t, &identity, Factor::Totp, was_first, "totp_on").await
        }
        totp::CodeCheck::ClockOff { steps } => {
            let minutes = (steps.unsigned_abs() * totp::STEP).div_ceil(60).max(1);
            (
                if steps > 0 {
                    t.clock_ahead(minutes)
                } else {
                    t.clock_behind(minutes)
                },
                Some(t.clock_fix),
            )
        }
        totp::CodeCheck::Replayed => (t.replayed_code.to_string(), None),
        totp::CodeCheck::Invalid => (t.wrong_code.to_string(), None),
    };
    audit!(
        "totp_enrollment_code_wrong",
        user = username,
        ip = req.ip_text()
    );
    Ok(enroll_page(
        state,
        req,
        t,
        &enrollment,
        StatusCode::BAD_REQUEST,
        Some(error),
        hint,
    ))
}
