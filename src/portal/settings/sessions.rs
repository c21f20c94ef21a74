//! Ending one of the user's sessions, or all the others; forgetting trusted devices.

use super::*;

/// `POST /settings/sessions/end`: ends one of the user's other sessions.
pub async fn session_end(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_SESSIONS_END);
    let id = req.form().get("id").unwrap_or("").to_string();
    let owned = state
        .store
        .sessions_of(&identity.user.username)
        .await?
        .iter()
        .any(|s| s.id == id);
    if owned && id != identity.session.id {
        state.store.delete_session(&id).await?;
        audit!(
            "session_ended",
            user = identity.user.username,
            session = id.get(..8).unwrap_or(""),
            by = "user"
        );
    }
    Ok(done(req, "session_ended"))
}

/// `POST /settings/sessions/end-others`.
pub async fn sessions_end_others(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_SESSIONS_END_OTHERS);
    let (_, _, ended) = end_sessions(
        state.store.as_ref(),
        &identity.user.username,
        Some(&identity.session),
        &mut |_| {},
    )
    .await?
    .ok_or(Error::SessionEnded)?;
    audit!(
        "sessions_ended",
        user = identity.user.username,
        count = ended,
        by = "user"
    );
    Ok(done(req, "others_ended"))
}

/// `POST /settings/devices/forget`: one trusted device asks for the second step again.
pub async fn device_forget(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_DEVICES_FORGET);
    let id = req.form().get("id").unwrap_or("").to_string();
    if crate::auth::devices::forget(state.store.as_ref(), &identity.user.username, &id).await? {
        audit!(
            "trusted_device_forgotten",
            user = identity.user.username,
            by = "user"
        );
    }
    Ok(done(req, "device_forgotten"))
}

/// `POST /settings/devices/forget-all`: every trusted device asks again.
pub async fn devices_forget_all(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_DEVICES_FORGET_ALL);
    let username = &identity.user.username;
    crate::auth::devices::revoke_all(state.store.as_ref(), username, "user").await?;
    // The sessions those devices let in without a second factor end with them (a
    // stolen laptop's among them); this one stays.
    for session in state.store.sessions_of(username).await? {
        if session.by_trusted_device() && session.id != identity.session.id {
            state.store.delete_session(&session.id).await?;
        }
    }
    Ok(done(req, "devices_forgotten"))
}
