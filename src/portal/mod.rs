//! The portal: login, logout, health and assets, written once and framework-free
//! ([`Portal::handle`] maps a [`Request`] to a [`Response`]). Two adapters serve it:
//! pingora's `ServeHttp` on the portal listener (mounted at `/`, with forward-auth), and
//! the proxy's `request_filter` under the reserved prefix `/.gatehouse/`.

pub mod i18n;
mod login;
pub mod pages;

use std::sync::Arc;

use http::{Method, StatusCode};

use crate::error::Error;
use crate::http::{asset, html, json, Request, Response};
use crate::portal::i18n::{texts_for, Texts};
use crate::portal::pages::{render, MessagePage};
use crate::state::AppState;

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
        let result = match (&req.method, req.path.as_str()) {
            (&Method::GET | &Method::HEAD, "/") => login::page(&self.state, &req, t),
            (&Method::POST, "/login") => login::submit(&self.state, &req, t).await,
            (&Method::GET, "/logout") => login::logout_page(&self.state, &req, t),
            (&Method::POST, "/logout") => login::logout(&self.state, &req, t),
            (&Method::GET | &Method::HEAD, "/assets/style.css") => Ok(asset(
                "text/css; charset=utf-8",
                include_bytes!("../../assets/style.css"),
            )),
            (&Method::GET | &Method::HEAD, "/api/health") => Ok(self.health()),
            (&Method::GET | &Method::HEAD, "/api/authz/auth-request") if req.mount.is_empty() => {
                Ok(crate::forward_auth::answer(
                    &self.state,
                    &req,
                    crate::forward_auth::Kind::AuthRequest,
                ))
            }
            (_, "/api/authz/forward-auth") if req.mount.is_empty() => {
                Ok(crate::forward_auth::answer(
                    &self.state,
                    &req,
                    crate::forward_auth::Kind::ForwardAuth,
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
        result.unwrap_or_else(|e| error_page(&e, t, req.mount))
    }

    fn health(&self) -> Response {
        match self.state.store.get_user("") {
            Ok(_) => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            Err(e) => {
                tracing::error!(error = %e, "health check: store unreadable");
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "store unavailable"}),
                )
            }
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
    if e.status().is_server_error() {
        tracing::error!(error = %e, "request failed");
    }
    let text = match e {
        Error::Csrf => t.csrf_failed.to_string(),
        other => other.public_message(),
    };
    message(e.status(), t, mount, t.error_title, &text)
}
