//! Notifiers: the clients that reach users and operators outside the browser. Mail
//! ([`email`]: a persistent queue and its sender), telephony ([`phone`]: voice, flash
//! calls, SMS), the Telegram Bot API ([`telegram`]; what the bot says is
//! [`crate::telegram_bot`]) and the recovery hook ([`hook`]). Production clients, pointed
//! at their servers by configuration; nothing here needs the whole state.

pub mod email;
pub mod hook;
pub mod phone;
pub mod telegram;
