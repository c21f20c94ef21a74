//! What a completed sign-in does in this browser, beyond the session: the device
//! cookie, the trust the user asked for at the second step ("don't ask again on this
//! device"), and the alert for a sign-in from a browser the user never signed in from
//! (by mail and to linked Telegram accounts, with "This was not me").
//!
//! The records are in [`crate::auth::devices`]; this is the portal's side.

use crate::audit;
use crate::auth::devices::{self, Seen};
use crate::basics::{now, random_token};
use crate::error::Result;
use crate::http::{add_cookie, Request, Response};
use crate::state::AppState;
use crate::store::{SessionRecord, User};
use crate::texts::{describe_device, moment, Texts};

/// New-device alerts per user per hour, at most (a flood of sign-ins is one story).
const ALERTS_PER_HOUR: usize = 6;
const ALERTED: &str = "alerted\0";
/// How long "This was not me" in Telegram can end the session.
const NOT_ME_DAYS: u64 = 7;

/// This browser as the device records know it.
pub(crate) struct Browser {
    pub id: String,
    /// `Set-Cookie` to send when the browser gets a new device id.
    new_cookie: Option<String>,
    /// The id it had before, when trust just gave it a new one (the same browser).
    previous: Option<String>,
}

pub(crate) fn browser(state: &AppState, req: &Request) -> Browser {
    let (id, new_cookie) = devices::device_id_or_new(&state.sessions, req.header("cookie"));
    Browser {
        id,
        new_cookie,
        previous: None,
    }
}

/// Days a trusted device skips the second step; 0 when the offer is off.
pub(crate) fn trust_days(state: &AppState) -> u64 {
    state.config.second_factor.trusted_device_days
}

/// Whether this browser is a device the user trusts now.
pub(crate) async fn is_trusted(state: &AppState, req: &Request, user: &User) -> Result<bool> {
    if trust_days(state) == 0 {
        return Ok(false);
    }
    match devices::device_id(&state.sessions, req.header("cookie")) {
        Some(id) => devices::is_trusted(state.store.as_ref(), &user.username, &id, now()).await,
        None => Ok(false),
    }
}

/// Trusts this browser for the user (asked for at the second step, and called once
/// the second step's session is made): always under a new device id, given to the
/// browser with the returned [`Browser`], never one the browser brought.
pub(crate) async fn trust(state: &AppState, req: &Request, user: &User) -> Result<Browser> {
    let days = trust_days(state);
    if days == 0 {
        return Ok(browser(state, req));
    }
    let (id, new_cookie) = devices::new_device_id(&state.sessions);
    let browser = Browser {
        id,
        new_cookie,
        previous: devices::device_id(&state.sessions, req.header("cookie")),
    };
    let ip = req.ip_text();
    devices::trust(
        state.store.as_ref(),
        user,
        &browser.id,
        days,
        &ip,
        req.header("user-agent").unwrap_or(""),
        now(),
    )
    .await?;
    audit!("device_trusted", user = user.username, ip = ip, days = days);
    Ok(browser)
}

/// After a sign-in completed in this browser: gives it its device cookie, and alerts
/// the user when they never signed in from it before (not on an account's first
/// sign-in). A failure here is logged: the sign-in itself stands.
pub(crate) async fn signed_in(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    user: &User,
    session: &SessionRecord,
    browser: Browser,
    response: &mut Response,
) {
    if let Some(cookie) = &browser.new_cookie {
        add_cookie(response, cookie);
    }
    let store = state.store.as_ref();
    // A browser that just got a new id (trust) is the one it was: judged by its old id.
    let seen = match &browser.previous {
        Some(previous) => {
            let seen = devices::note_seen(store, user, previous, now()).await;
            if let Err(e) = devices::note_seen(store, user, &browser.id, now()).await {
                tracing::error!(error = %e, user = user.username, "device not recorded");
            }
            seen
        }
        None => devices::note_seen(store, user, &browser.id, now()).await,
    };
    match seen {
        Ok(Seen::New) if state.config.second_factor.new_device_alerts => {
            if let Err(e) = alert(state, req, t, user, session, &browser.id).await {
                tracing::error!(error = %e, user = user.username, "new-device alert not sent");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, user = user.username, "device not recorded"),
    }
}

async fn alert(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    user: &User,
    session: &SessionRecord,
    device_id: &str,
) -> Result<()> {
    let store = state.store.as_ref();
    let by_mail = state.mailer.enabled() && !user.email.is_empty();
    let chats = match &state.telegram {
        Some(_) => crate::mfa::telegram::accounts(store, &user.username).await?,
        None => Vec::new(),
    };
    if !by_mail && chats.is_empty() {
        return Ok(());
    }
    let at = now();
    let recent = store
        .tokens_with_ends(&format!("{ALERTED}{}\0", user.username))
        .await?
        .into_iter()
        .filter(|(_, _, end)| end.is_some_and(|end| end > at))
        .count();
    if recent >= ALERTS_PER_HOUR {
        audit!("new_device_alert_limited", user = user.username);
        return Ok(());
    }
    store
        .put_token(
            &format!("{ALERTED}{}\0{}", user.username, random_token(8)),
            b"",
            Some(at + 3600),
        )
        .await?;
    let site = &crate::texts::brand().name;
    // The device text (from the client's user agent) goes in last: nothing in it is
    // read as a placeholder.
    let line = t
        .new_device_line
        .replace("{site}", site)
        .replace("{time}", &moment(t.lang, session.created_at).text)
        .replace("{ip}", &session.ip)
        .replace("{device}", &describe_device(t.lang, &session.user_agent));
    let settings = crate::portal::reset::public_base(state, req)
        .map(|base| format!("{base}{}#sessions-title", crate::portal::routes::SETTINGS));
    let mut lines = vec![line.clone(), t.new_device_not_you.to_string()];
    if settings.is_none() {
        lines.push(t.new_device_open_settings.replace("{site}", site));
    }
    if by_mail {
        state
            .mailer
            .send_later(
                &user.email,
                crate::notify::email::Letter {
                    t,
                    subject: t.new_device_subject.replace("{site}", site),
                    lines,
                    code: None,
                    link: settings.as_deref(),
                },
            )
            .await;
    }
    if let (Some(bot), false) = (&state.telegram, chats.is_empty()) {
        let token = devices::not_me_token(
            store,
            &user.username,
            &session.id,
            device_id,
            NOT_ME_DAYS,
            at,
        )
        .await?;
        for account in chats {
            bot.notice_with_button(
                account.chat_id,
                format!("{line}\n\n{}", t.telegram.not_me_hint),
                (
                    t.telegram.not_me_button,
                    format!("{}:{token}", devices::NOT_ME_PREFIX),
                ),
            )
            .await;
        }
    }
    audit!(
        "new_device_alert",
        user = user.username,
        ip = session.ip,
        session = &session.id[..8]
    );
    Ok(())
}
