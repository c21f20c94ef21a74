//! `[password]` (argon2 parameters), `[regulation]` (brute-force bans) and `[password_reset]`.

use super::*;

/// argon2id parameters; the defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Shortest password a user may choose.
    pub min_length: usize,
    /// Low-priority threads that hash passwords (0 = one fewer than the cores, at least 1).
    pub hashing_threads: usize,
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            min_length: 8,
            hashing_threads: 0,
        }
    }
}

/// "Forgot password" by email.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordReset {
    /// Offer the link on the login page (needs `[smtp]`).
    pub enabled: bool,
    /// Switch off every second factor of the account when a reset link is used.
    pub disables_second_factors: bool,
    #[serde(with = "humantime_serde")]
    pub link_lifetime: Duration,
    /// Reset requests allowed per account and per client IP in an hour.
    pub requests_per_hour: u32,
}

impl Default for PasswordReset {
    fn default() -> Self {
        PasswordReset {
            enabled: true,
            disables_second_factors: true,
            link_lifetime: Duration::from_secs(30 * 60),
            requests_per_hour: 5,
        }
    }
}

/// Brute-force regulation, per user and per client IP (Authelia's defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Regulation {
    pub max_retries: u32,
    #[serde(with = "humantime_serde")]
    pub find_time: Duration,
    #[serde(with = "humantime_serde")]
    pub ban_time: Duration,
}

impl Default for Regulation {
    fn default() -> Self {
        Regulation {
            max_retries: 3,
            find_time: Duration::from_secs(120),
            ban_time: Duration::from_secs(300),
        }
    }
}

impl PasswordParams {
    /// argon2 accepts the parameters, and they are not weaker than the minimums.
    pub(super) fn check(&self) -> Result<()> {
        let p = self;
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|e| {
            Error::config(
                "password",
                format!("{p:?}"),
                format!("invalid argon2 parameters: {e}"),
            )
        })?;
        if p.memory_kib < 8 * 1024 || p.iterations < 1 {
            return Err(Error::config(
                "password.memory_kib",
                p.memory_kib,
                "at least 8192 KiB (OWASP's minimum is 19456 with 2 iterations)",
            ));
        }
        Ok(())
    }

    /// New passwords are at least 8 characters long.
    pub(super) fn check_min_length(&self) -> Result<()> {
        if self.min_length < 8 {
            return Err(Error::config(
                "password.min_length",
                self.min_length,
                "at least 8 (NIST SP 800-63B)",
            ));
        }
        Ok(())
    }
}

impl Regulation {
    pub(super) fn check(&self) -> Result<()> {
        if self.max_retries == 0 {
            return Err(Error::config(
                "regulation.max_retries",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
