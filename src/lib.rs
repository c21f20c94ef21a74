//! gatehouse: a password and second-factor login in front of any web panel, as a pingora
//! reverse proxy or as the forward-auth service of nginx, Traefik and Caddy.
//!
//! # Layout
//! Layers, each using those below it and some beside it, never one above
//! (`tests/layers.rs` fails on any import circle between these modules):
//! 1. Entry points: [`cli`], [`server`] (the pingora `Server` and its services),
//!    [`demo`], [`admin`] (operator commands and the admin socket), [`bench_seed`].
//! 2. Requests: [`portal`] (login, settings, logout, health, assets; framework-free
//!    `Portal::handle`), [`forward_auth`] (`/api/authz/*`), [`proxy`] (the `ProxyHttp`
//!    of proxy mode), [`telegram_bot`] (the bot's conversation and long polling).
//! 3. [`state`]: the shared [`state::AppState`], which implements the narrow handles
//!    the layers below ask for (such as [`mfa::Services`]); nothing below the request
//!    layer imports it.
//! 4. [`mfa`]: second factors (one module per factor, same shape) and their rules,
//!    including security notices.
//! 5. [`notify`]: clients that reach users outside the browser (the mail sender on the
//!    store's `mail` queue, telephony providers, the Telegram Bot API and its notice
//!    queue, the recovery hook's queue); they take the store parts they use.
//! 6. [`auth`]: passwords, sessions, the brute-force limiter (counted in the store's
//!    `Counters`), the per-request [`auth::gate`]; [`metrics`]: Prometheus counters and
//!    their listener.
//! 7. [`config`]: figment layers → one validated [`config::Config`]; [`policy`]: access
//!    rules, first match wins; [`crypto`]: secrets at rest (AES-GCM) and keyed hashes
//!    of one-time codes; [`store`]: the store's async parts (users, sessions, factors,
//!    tokens, counters, queues, events, transactions, leadership), implemented by
//!    [`store::KvStore`] over sled or memory and by [`store::PgStore`] on PostgreSQL;
//!    [`texts`]: every text in English and Ukrainian; [`activity`]: the audit events
//!    about each user's security, kept in the store for their settings page.
//! 8. Foundations: [`http`] (request/response types, security headers, client IP, `rd`
//!    validation, the canonical request target and host, host patterns, the connection
//!    guard), [`phone_number`], [`basics`] (clock, random tokens, private files),
//!    [`error`] (the one error type and its HTTP status), [`mod@audit`], [`crash`].

pub mod activity;
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
#[cfg(test)]
mod race_tests;
pub mod server;
pub mod state;
pub mod store;
pub mod telegram_bot;
pub mod texts;
