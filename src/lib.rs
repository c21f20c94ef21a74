//! gatehouse: a password and second-factor login in front of any web panel, as a pingora
//! reverse proxy or as the forward-auth service of nginx, Traefik and Caddy.
//!
//! # Layout
//! - [`cli`]: the command line; [`server`]: builds the pingora `Server` and its services;
//!   [`demo`]: `gatehouse demo`.
//! - [`config`]: figment layers → one validated [`config::Config`]; [`error`]: the one
//!   error type and its HTTP status; [`state`]: the shared [`state::AppState`].
//! - [`http`]: request/response types, security headers, client IP, `rd` validation,
//!   the canonical request target and host ([`http::target`]), the connection guard of
//!   both listeners ([`http::guard`]).
//! - [`portal`]: login, logout, health, assets (framework-free `Portal::handle`).
//! - [`forward_auth`]: `/api/authz/*` for nginx, Traefik, Caddy.
//! - [`proxy`]: the `ProxyHttp` of proxy mode, identity headers.
//! - [`policy`]: access rules, first match wins.
//! - [`auth`]: passwords, sessions, brute-force limiter, and the per-request [`auth::gate`].
//! - [`mfa`]: second factors (one module per factor, same shape) and their shared rules.
//! - [`notify`]: reaching users outside the browser (email from a retrying queue, phone
//!   calls and SMS, the recovery hook, the Telegram bot).
//! - [`crypto`]: secrets at rest (AES-GCM) and keyed hashes of one-time codes.
//! - [`store`]: the `Store` trait and its sled implementation.
//! - [`metrics`]: Prometheus counters and their own listener.
//! - [`admin`]: operator commands and the admin socket; [`audit`]: the audit log.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod basics;
pub mod bench_seed;
pub mod cli;
pub mod config;
pub mod crash;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod forward_auth;
pub mod http;
pub mod metrics;
pub mod mfa;
pub mod notify;
pub mod phone_number;
pub mod policy;
pub mod portal;
pub mod proxy;
pub mod server;
pub mod state;
pub mod store;
pub mod telegram_bot;
pub mod texts;
