//! The portal: login, logout, health and assets, written once and framework-free
//! ([`Portal::handle`] maps a [`Request`] to a [`Response`]). Two adapters serve it:
//! pingora's `ServeHttp` on the portal listener (mounted at `/`, with forward-auth), and
//! the proxy's `request_filter` under the reserved prefix `/.gatehouse/`.

pub mod common;
mod login;
pub mod pages;
mod passkeys;
mod phone_step;
pub(crate) mod reset;
mod second_step;
mod settings;
mod telegram;

use std::sync::Arc;

use http::{Method, StatusCode};

use crate::error::Error;
use crate::http::{asset, html, json, Request, Response};
use crate::portal::pages::{render, MessagePage};
use crate::state::AppState;
use crate::texts::{texts_for, Texts};

/// The reserved path prefix of the portal in proxy mode.
pub const PROXY_MOUNT: &str = "/.gatehouse";

/// The portal application.
#[derive(Clone)]
pub struct Portal {
    state: Arc<AppState>,
}

impl Portal {
    pub fn new(state: Arc<AppState>) -> Self {
        Portal { state }
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response {
        let t = texts_for(req.header("accept-language"));
        let state = &self.state;
        let result = match (&req.method, req.path.as_str()) {
            (&Method::GET | &Method::HEAD, "/") => login::page(state, &req, t),
            (&Method::POST, "/login") => login::submit(state, &req, t).await,
            (&Method::POST, "/login/passkey") => passkeys::login(state, &req, t),
            (&Method::POST, "/login/passkey/options") => passkeys::login_options(state, &req, t),
            (&Method::GET, "/logout") => login::logout_page(state, &req, t),
            (&Method::POST, "/logout") => login::logout(state, &req, t),
            (&Method::GET, "/forgot") => reset::forgot(state, &req, t),
            (&Method::POST, "/forgot") => reset::request(state, &req, t).await,
            (&Method::GET, "/reset") => reset::reset_form(state, &req, t),
            (&Method::POST, "/reset") => reset::reset_submit(state, &req, t).await,
            (&Method::GET | &Method::HEAD, "/2fa") => second_step::page(state, &req, t),
            (&Method::POST, "/2fa") => second_step::submit(state, &req, t),
            (&Method::GET, "/2fa/phone") => phone_step::page(state, &req, t),
            (&Method::POST, "/2fa/phone/call") => phone_step::call(state, &req, t).await,
            (&Method::POST, "/2fa/phone/verify") => phone_step::verify(state, &req, t),
            (&Method::POST, "/2fa/telegram/start") => telegram::start(state, &req, t).await,
            (&Method::GET, "/2fa/telegram/wait") => telegram::wait(state, &req, t).await,
            (&Method::POST, "/telegram/webhook") if req.mount.is_empty() => {
                telegram::webhook(state, &req, t).await
            }
            (&Method::POST, "/settings/telegram/link") => telegram::link(state, &req, t),
            (&Method::GET, "/settings/telegram/status") => telegram::status(state, &req, t).await,
            (&Method::GET, "/settings/telegram/linked") => telegram::linked(state, &req, t),
            (&Method::POST, "/settings/telegram/enable") => telegram::enable(state, &req, t),
            (&Method::POST, "/settings/telegram/disable") => {
                settings::factor_disable(state, &req, t, crate::mfa::Factor::Telegram).await
            }
            (&Method::POST, "/settings/telegram/remove") => telegram::remove(state, &req, t).await,
            (&Method::POST, "/2fa/email") => second_step::send_email(state, &req, t).await,
            (&Method::GET | &Method::HEAD, "/settings") => settings::page(state, &req, t),
            (&Method::POST, "/settings/confirm") => settings::confirm(state, &req, t).await,
            (&Method::POST, "/settings/identity/send") => {
                settings::identity_send(state, &req, t).await
            }
            (&Method::POST, "/settings/identity/verify") => {
                settings::identity_verify(state, &req, t)
            }
            (&Method::POST, "/settings/totp/start") => settings::totp_start(state, &req, t),
            (&Method::GET, "/settings/totp") => settings::totp_page(state, &req, t),
            (&Method::POST, "/settings/totp/confirm") => settings::totp_confirm(state, &req, t),
            (&Method::POST, "/settings/totp/disable") => {
                settings::factor_disable(state, &req, t, crate::mfa::Factor::Totp).await
            }
            (&Method::POST, "/settings/email/start") => settings::email_start(state, &req, t).await,
            (&Method::POST, "/settings/email/confirm") => settings::email_confirm(state, &req, t),
            (&Method::POST, "/settings/email/disable") => {
                settings::factor_disable(state, &req, t, crate::mfa::Factor::Email).await
            }
            (&Method::POST, "/settings/webauthn/add") => passkeys::add(state, &req, t),
            (&Method::POST, "/settings/webauthn/finish") => passkeys::finish(state, &req, t),
            (&Method::POST, "/settings/webauthn/passwordless") => {
                passkeys::passwordless(state, &req, t)
            }
            (&Method::POST, "/settings/webauthn/delete") => passkeys::delete(state, &req, t).await,
            (&Method::POST, "/settings/backup/regenerate") => {
                settings::backup_regenerate(state, &req, t)
            }
            (&Method::POST, "/settings/sessions/end") => settings::session_end(state, &req, t),
            (&Method::POST, "/settings/sessions/end-others") => {
                settings::sessions_end_others(state, &req, t)
            }
            (&Method::POST, "/settings/address/start") => {
                settings::address_start(state, &req, t).await
            }
            (&Method::POST, "/settings/address/confirm") => {
                settings::address_confirm(state, &req, t)
            }
            (&Method::POST, "/settings/phone/add") => settings::phone_add(state, &req, t).await,
            (&Method::POST, "/settings/phone/confirm") => settings::phone_confirm(state, &req, t),
            (&Method::POST, "/settings/phone/remove") => settings::phone_remove(state, &req, t),
            (&Method::POST, "/settings/password") => {
                settings::password_change(state, &req, t).await
            }
            (&Method::GET | &Method::HEAD, "/assets/style.css") => Ok(asset(
                "text/css; charset=utf-8",
                include_bytes!("../../assets/style.css"),
            )),
            (&Method::GET | &Method::HEAD, "/assets/settings.js") => Ok(asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/settings.js"),
            )),
            (&Method::GET | &Method::HEAD, "/assets/webauthn.js") => Ok(asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/webauthn.js"),
            )),
            (&Method::GET | &Method::HEAD, "/assets/telegram.js") => Ok(asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/telegram.js"),
            )),
            (&Method::GET | &Method::HEAD, "/api/health") => Ok(self.health()),
            (&Method::GET | &Method::HEAD, "/api/authz/auth-request") if req.mount.is_empty() => {
                Ok(crate::forward_auth::answer(
                    state,
                    &req,
                    crate::forward_auth::Kind::AuthRequest,
                ))
            }
            (_, "/api/authz/forward-auth") if req.mount.is_empty() => Ok(
                crate::forward_auth::answer(state, &req, crate::forward_auth::Kind::ForwardAuth),
            ),
            _ => Ok(message(
                StatusCode::NOT_FOUND,
                t,
                req.mount,
                t.not_found_title,
                t.not_found,
            )),
        };
        result.unwrap_or_else(|e| error_page(&e, t, req.mount))
    }

    /// 200 while the store reads and writes; 503 with the reason otherwise.
    fn health(&self) -> Response {
        match self.state.store.health() {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            Err(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "store unavailable", "reason": reason}),
            ),
        }
    }
}

/// A page with a title and one line of text.
pub fn message(
    status: StatusCode,
    t: &'static Texts,
    mount: &str,
    title: &str,
    text: &str,
) -> Response {
    html(
        status,
        render(&MessagePage {
            t,
            title,
            mount,
            text,
        }),
    )
}

/// The page for an error; internals are logged, never shown.
pub fn error_page(e: &Error, t: &'static Texts, mount: &str) -> Response {
    // A store that cannot write was logged once, when it started failing.
    if e.status().is_server_error() && !matches!(e, Error::Busy | Error::StoreUnavailable(_)) {
        tracing::error!(error = %e, "request failed");
    }
    let text = match e {
        Error::Csrf => t.csrf_failed.to_string(),
        other => other.public_message(),
    };
    message(e.status(), t, mount, t.error_title, &text)
}
