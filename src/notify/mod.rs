//! Notifiers: how gatehouse reaches users outside the browser. Email for now
//! ([`email`]); Telegram and telephony follow the same pattern (a queue drained by a
//! background service, production clients pointed at their servers by config).

pub mod email;
pub mod hook;
pub mod phone;
pub mod telegram;
