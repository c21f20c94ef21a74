//! `[second_factor]`: the rules of the second step.

use super::*;

/// Second-factor settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecondFactor {
    /// The issuer shown in authenticator apps (empty: the panel's name, `portal.name`).
    pub totp_issuer: String,
    /// TOTP steps accepted either side of now (clock drift); 1 = ±30 s.
    pub totp_skew: u64,
    /// How many backup codes a set has.
    pub backup_codes: usize,
    /// Send a user without 2FA who opens a two_factor resource to the settings page to
    /// turn one on (otherwise: 403).
    pub enrollment_redirect: bool,
    /// Changes on the settings page ask for the password again when it was last entered
    /// longer ago than this.
    #[serde(with = "humantime_serde")]
    pub reauthentication_window: Duration,
    /// How long an emailed code is valid.
    #[serde(with = "humantime_serde")]
    pub email_code_lifetime: Duration,
    /// Wrong tries after which an emailed code is dead.
    pub email_code_tries: u32,
    /// Wait between two emailed codes.
    #[serde(with = "humantime_serde")]
    pub email_resend_cooldown: Duration,
    /// Emailed codes per user per hour.
    pub email_codes_per_hour: u32,
    /// Before the first second factor is added to an account that has an email address
    /// (with `[smtp]` configured), ask for a code mailed there: the password alone must
    /// not let a thief enrol their own authenticator.
    pub verify_identity_by_email: bool,
    /// Days a browser the user trusts at the second step skips it ("don't ask again on
    /// this device"); 0 turns the offer off. Rules with `ask_every_time` ignore it.
    pub trusted_device_days: u64,
    /// Mail and Telegram the user when they sign in from a browser not seen before.
    pub new_device_alerts: bool,
}

impl Default for SecondFactor {
    fn default() -> Self {
        SecondFactor {
            totp_issuer: String::new(),
            totp_skew: 1,
            backup_codes: 5,
            enrollment_redirect: true,
            reauthentication_window: Duration::from_secs(10 * 60),
            email_code_lifetime: Duration::from_secs(10 * 60),
            email_code_tries: 5,
            email_resend_cooldown: Duration::from_secs(60),
            email_codes_per_hour: 6,
            verify_identity_by_email: true,
            trusted_device_days: 30,
            new_device_alerts: true,
        }
    }
}

impl SecondFactor {
    pub(super) fn check(&self) -> Result<()> {
        let sf = self;
        if sf.totp_skew > 2 {
            return Err(Error::config(
                "second_factor.totp_skew",
                sf.totp_skew,
                "at most 2 steps (±60 s); fix clocks instead",
            ));
        }
        if !(1..=20).contains(&sf.backup_codes) {
            return Err(Error::config(
                "second_factor.backup_codes",
                sf.backup_codes,
                "between 1 and 20",
            ));
        }
        if sf.trusted_device_days > 365 {
            return Err(Error::config(
                "second_factor.trusted_device_days",
                sf.trusted_device_days,
                "at most 365 (0 turns trusted devices off)",
            ));
        }
        if sf.totp_issuer.contains(':') {
            return Err(Error::config(
                "second_factor.totp_issuer",
                &sf.totp_issuer,
                "must contain no `:`",
            ));
        }
        Ok(())
    }

    /// Emailed codes can be tried and sent at all.
    pub(super) fn check_email_limits(&self) -> Result<()> {
        if self.email_code_tries == 0 || self.email_codes_per_hour == 0 {
            return Err(Error::config(
                "second_factor.email_code_tries",
                self.email_code_tries,
                "tries and codes per hour must be at least 1",
            ));
        }
        Ok(())
    }
}
