//! The login, two-factor, forward-auth and guessing suites again, every server on
//! PostgreSQL instead of sled (a throwaway cluster from Debian's `postgresql`, a fresh
//! database per server): the same behaviour on both backends. The harness picks the
//! backend from this binary's name (`common::on_postgres`); without PostgreSQL the
//! suites run on sled and say so.

// Each suite brings its own `mod common;` (it is a test binary of its own too), so the
// harness is compiled once per suite here. That is meant: what must be one per process
// (the ports handed out, the PostgreSQL cluster) is claimed process-wide by the harness.
#![allow(clippy::duplicate_mod)]

#[path = "forward_auth.rs"]
mod forward_auth;

#[path = "two_factor.rs"]
mod two_factor;

#[path = "forgery_and_guessing.rs"]
mod forgery_and_guessing;

#[path = "email.rs"]
mod email;

#[path = "nginx.rs"]
mod nginx;

#[path = "telegram.rs"]
mod telegram;

#[path = "phone.rs"]
mod phone;

#[path = "races.rs"]
mod races;

#[path = "cli.rs"]
mod cli;
