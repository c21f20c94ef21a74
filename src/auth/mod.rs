//! Authentication: password hashing, the session cookie and records, brute-force
//! regulation, and [`gate`], the per-request decision shared by proxy and forward-auth.

pub mod devices;
pub mod gate;
pub mod limiter;
pub mod password;
pub mod session;
