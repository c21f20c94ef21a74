//! The portal: login, logout, health and assets, written once and framework-free
//! ([`Portal::handle`] maps a [`Request`] to a [`Response`]). Two adapters serve it:
//! pingora's `ServeHttp` on the portal listener (mounted at `/`, with forward-auth), and
//! the proxy's `request_filter` under the reserved prefix `/.gatehouse/`.

pub mod common;
mod devices;
mod login;
pub mod pages;
mod passkeys;
mod phone_step;
pub(crate) mod reset;
pub mod routes;
pub(crate) use second_step::label as method_label;
mod second_step;
mod settings;
mod telegram;

use std::sync::Arc;

use http::{Method, StatusCode};

use crate::error::Error;
use crate::http::{asset, html, json, Request, Response};
use crate::portal::pages::{render, MessagePage};
use crate::state::AppState;
use crate::texts::Texts;

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
        let state = &self.state;
        // The forward-auth checks (the hot path) and health show no page: no texts.
        match (&req.method, req.path.as_str()) {
            (&Method::GET | &Method::HEAD, routes::API_HEALTH) => return self.health(),
            (&Method::GET | &Method::HEAD, routes::API_AUTHZ_AUTH_REQUEST)
                if req.mount.is_empty() =>
            {
                return crate::forward_auth::answer(
                    state,
                    (&req).into(),
                    crate::forward_auth::Kind::AuthRequest,
                )
                .await
            }
            (_, routes::API_AUTHZ_FORWARD_AUTH) if req.mount.is_empty() => {
                return crate::forward_auth::answer(
                    state,
                    (&req).into(),
                    crate::forward_auth::Kind::ForwardAuth,
                )
                .await
            }
            _ => {}
        }
        let t = common::texts_of(state, &req.headers);
        let result = match (&req.method, req.path.as_str()) {
            (&Method::GET | &Method::HEAD, routes::LOGIN_PAGE) => login::page(state, &req, t).await,
            (&Method::POST, routes::LOGIN) => login::submit(state, &req, t).await,
            (&Method::POST, routes::LOGIN_PASSKEY) => passkeys::login(state, &req, t).await,
            (&Method::POST, routes::LOGIN_PASSKEY_OPTIONS) => {
                passkeys::login_options(state, &req, t).await
            }
            (&Method::GET, routes::LOGOUT) => login::logout_page(state, &req, t).await,
            (&Method::GET, routes::LANGUAGE) => Ok(switch_language(state, &req)),
            (&Method::GET, routes::DENIED) => {
                // Where a front proxy sends a browser the rules refused (forward-auth
                // mode): the refused address only if it is one of ours.
                let rd = req
                    .query_param("rd")
                    .and_then(|rd| {
                        crate::http::redirect::safe_redirect(&rd, &state.config.protected_domains)
                    })
                    .unwrap_or_default();
                Ok(denied_page(state, t, req.mount, req.header("cookie").unwrap_or(""), &rd).await)
            }
            (&Method::POST, routes::LOGOUT) => login::logout(state, &req, t).await,
            (&Method::GET, routes::FORGOT) => reset::forgot(state, &req, t).await,
            (&Method::POST, routes::FORGOT) => reset::request(state, &req, t).await,
            (&Method::GET, routes::RESET) => reset::reset_form(state, &req, t).await,
            (&Method::POST, routes::RESET) => reset::reset_submit(state, &req, t).await,
            (&Method::GET | &Method::HEAD, routes::SECOND_STEP) => {
                second_step::page(state, &req, t).await
            }
            (&Method::POST, routes::SECOND_STEP) => second_step::submit(state, &req, t).await,
            (&Method::GET, routes::SECOND_STEP_BACKUP_USED) => {
                second_step::backup_used(state, &req, t).await
            }
            (&Method::GET, routes::SECOND_STEP_PHONE) => phone_step::page(state, &req, t).await,
            (&Method::POST, routes::SECOND_STEP_PHONE_CALL) => {
                phone_step::call(state, &req, t).await
            }
            (&Method::POST, routes::SECOND_STEP_PHONE_VERIFY) => {
                phone_step::verify(state, &req, t).await
            }
            (&Method::POST, routes::SECOND_STEP_TELEGRAM_START) => {
                telegram::start(state, &req, t).await
            }
            (&Method::GET, routes::SECOND_STEP_TELEGRAM_WAIT) => {
                telegram::wait(state, &req, t).await
            }
            (&Method::POST, routes::TELEGRAM_WEBHOOK) if req.mount.is_empty() => {
                telegram::webhook(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_TELEGRAM_LINK) => telegram::link(state, &req, t).await,
            (&Method::GET, routes::SETTINGS_TELEGRAM_STATUS) => {
                telegram::status(state, &req, t).await
            }
            (&Method::GET, routes::SETTINGS_TELEGRAM_LINKED) => {
                telegram::linked(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_TELEGRAM_ENABLE) => {
                telegram::enable(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_TELEGRAM_DISABLE) => {
                settings::factor_disable(state, &req, t, crate::mfa::Factor::Telegram).await
            }
            (&Method::POST, routes::SETTINGS_TELEGRAM_REMOVE) => {
                telegram::remove(state, &req, t).await
            }
            (&Method::POST, routes::SECOND_STEP_EMAIL) => {
                second_step::send_email(state, &req, t).await
            }
            (&Method::GET | &Method::HEAD, routes::SETTINGS) => {
                settings::page(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_CONFIRM) => settings::confirm(state, &req, t).await,
            (&Method::POST, routes::SETTINGS_IDENTITY_SEND) => {
                settings::identity_send(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_IDENTITY_VERIFY) => {
                settings::identity_verify(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_TOTP_START) => {
                settings::totp_start(state, &req, t).await
            }
            (&Method::GET, routes::SETTINGS_TOTP) => settings::totp_page(state, &req, t).await,
            (&Method::POST, routes::SETTINGS_TOTP_CONFIRM) => {
                settings::totp_confirm(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_TOTP_DISABLE) => {
                settings::factor_disable(state, &req, t, crate::mfa::Factor::Totp).await
            }
            (&Method::POST, routes::SETTINGS_EMAIL_START) => {
                settings::email_start(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_EMAIL_CONFIRM) => {
                settings::email_confirm(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_EMAIL_DISABLE) => {
                settings::factor_disable(state, &req, t, crate::mfa::Factor::Email).await
            }
            (&Method::POST, routes::SETTINGS_WEBAUTHN_ADD) => passkeys::add(state, &req, t).await,
            (&Method::POST, routes::SETTINGS_WEBAUTHN_FINISH) => {
                passkeys::finish(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_WEBAUTHN_PASSWORDLESS) => {
                passkeys::passwordless(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_WEBAUTHN_DELETE) => {
                passkeys::delete(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_BACKUP_REGENERATE) => {
                settings::backup_regenerate(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_SESSIONS_END) => {
                settings::session_end(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_SESSIONS_END_OTHERS) => {
                settings::sessions_end_others(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_DEVICES_FORGET) => {
                settings::device_forget(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_DEVICES_FORGET_ALL) => {
                settings::devices_forget_all(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_ADDRESS_START) => {
                settings::address_start(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_ADDRESS_CONFIRM) => {
                settings::address_confirm(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_PHONE_ADD) => {
                settings::phone_add(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_PHONE_CONFIRM) => {
                settings::phone_confirm(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_PHONE_REMOVE) => {
                settings::phone_remove(state, &req, t).await
            }
            (&Method::POST, routes::SETTINGS_PASSWORD) => {
                settings::password_change(state, &req, t).await
            }
            (&Method::GET | &Method::HEAD, routes::ASSETS_BRAND_CSS) => {
                Ok(crate::http::owned_asset(
                    "text/css; charset=utf-8",
                    crate::texts::brand().css().into_bytes(),
                ))
            }
            (&Method::GET | &Method::HEAD, routes::ASSETS_LOGO) => {
                match &crate::texts::brand().logo {
                    Some((bytes, content_type)) => {
                        // An SVG is a document: sandboxed, with no script of any origin.
                        let mut logo = crate::http::owned_asset(content_type, bytes.clone());
                        logo.headers_mut().insert(
                            http::header::CONTENT_SECURITY_POLICY,
                            http::HeaderValue::from_static(
                                "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                            ),
                        );
                        Ok(logo)
                    }
                    None => Err(Error::NotFound("no logo is configured".into())),
                }
            }
            (&Method::GET | &Method::HEAD, routes::ASSETS_STYLE_CSS) => Ok(asset(
                "text/css; charset=utf-8",
                include_bytes!("../../assets/style.css"),
            )),
            (&Method::GET | &Method::HEAD, routes::ASSETS_SETTINGS_JS) => Ok(asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/settings.js"),
            )),
            (&Method::GET | &Method::HEAD, routes::ASSETS_WEBAUTHN_JS) => Ok(asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/webauthn.js"),
            )),
            (&Method::GET | &Method::HEAD, routes::ASSETS_TELEGRAM_JS) => Ok(asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../../assets/telegram.js"),
            )),
            // Reloading the address a form posted to (the browser asks it with GET):
            // back to the page the form was on, never a 404.
            (&Method::GET | &Method::HEAD, path) if routes::ALL.contains(&path) => {
                Ok(crate::http::redirect(
                    StatusCode::SEE_OTHER,
                    &format!("{}{}", req.mount, routes::page_of_form(path)),
                ))
            }
            _ => Ok(message(
                StatusCode::NOT_FOUND,
                t,
                req.mount,
                t.not_found_title,
                t.not_found,
            )),
        };
        result.unwrap_or_else(|e| error_page_at(&e, t, req.mount, &req.path))
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
            link: None,
        }),
    )
}

/// The 403 page for a browser: who is signed in (the session read only on this rare
/// path), a way to sign in as someone else that comes back to `rd`, and the way back
/// to the start page.
pub async fn denied_page(
    state: &AppState,
    t: &'static Texts,
    mount: &str,
    cookies: &str,
    rd: &str,
) -> Response {
    let identity =
        match crate::auth::session::cookie_value(cookies, &state.sessions.config().cookie_name) {
            Some(value) => state
                .sessions
                .resolve(value, crate::basics::now())
                .await
                .ok()
                .flatten()
                // Only a signed-in session is named: the password alone says nothing.
                .filter(|i| i.session.level >= crate::store::AuthLevel::OneFactor),
            None => None,
        };
    let who = identity
        .as_ref()
        .map(|i| (i.user.shown_name(), i.user.username.as_str()));
    let home = common::default_target(state);
    html(
        StatusCode::FORBIDDEN,
        render(&pages::DeniedPage {
            t,
            title: t.denied_title,
            mount,
            who,
            rd,
            home: &home,
        }),
    )
}

/// The page for an error; internals are logged, never shown.
pub fn error_page(e: &Error, t: &'static Texts, mount: &str) -> Response {
    error_page_at(e, t, mount, routes::LOGIN_PAGE)
}

/// [`error_page`] for a request to `path`: a form refused for its CSRF token (a page
/// open too long, another tab signed out) offers to reload the page the form is on.
pub fn error_page_at(e: &Error, t: &'static Texts, mount: &str, path: &str) -> Response {
    if matches!(e, Error::Csrf) {
        let reload = format!("{mount}{}", routes::page_of_form(path));
        return html(
            e.status(),
            render(&MessagePage {
                t,
                title: t.error_title,
                mount,
                text: t.csrf_failed,
                link: Some((reload.as_str(), t.reload_form)),
            }),
        );
    }
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

/// `GET /lang?to=uk`: keeps the language picked with the switcher (a cookie) and goes
/// back to the portal page it was picked on. Only a page of the portal, by its path: the
/// `Referer` never sends anyone to another site.
fn switch_language(state: &AppState, req: &Request) -> Response {
    let back = req
        .header("referer")
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        })
        .filter(|path| {
            let below = &path[req.mount.len().min(path.len())..];
            path.starts_with(req.mount)
                && below.starts_with('/')
                && !below.starts_with("//")
                && !path.contains('\\')
        })
        .unwrap_or_else(|| format!("{}{}", req.mount, routes::LOGIN_PAGE));
    let mut response = crate::http::redirect(StatusCode::SEE_OTHER, &back);
    if let Some(lang) = req
        .query_param("to")
        .filter(|l| crate::texts::is_language(l))
    {
        crate::http::add_cookie(&mut response, &state.sessions.language_cookie(&lang));
    }
    response
}
