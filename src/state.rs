//! [`AppState`]: everything a request handler needs, built once at start-up and shared.

use std::sync::Arc;

use crate::auth::limiter::Limiter;
use crate::auth::password::Passwords;
use crate::auth::session::{load_or_create_secret, Sessions};
use crate::config::Config;
use crate::crypto::{load_or_create_key, CodeHasher, Sealer};
use crate::error::Result;
use crate::notify::email::Mailer;
use crate::store::{KvStore, SledStore, Store};

/// Shared state of a running gatehouse.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// Persistent state (users, sessions).
    pub store: Arc<dyn Store>,
    /// Session cookies, records and CSRF tokens.
    pub sessions: Sessions,
    /// argon2id hashing on the blocking pool.
    pub passwords: Passwords,
    /// Brute-force regulation of logins and second-step codes.
    pub limiter: Limiter,
    /// Encrypts secrets at rest (TOTP seeds).
    pub sealer: Sealer,
    /// Hashes one-time codes (backup codes, emailed codes, reset tokens).
    pub code_hasher: CodeHasher,
    /// The outgoing mail queue.
    pub mailer: Arc<Mailer>,
    /// Limits "forgot password" requests per account and per IP.
    pub reset_limiter: Limiter,
    /// The telephony provider, when `[phone]` is configured.
    pub phone: Option<Box<dyn crate::notify::phone::PhoneProvider>>,
    /// Hourly budgets of calls and SMS.
    pub phone_budgets: crate::mfa::phone::Budgets,
    /// Prometheus counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Limits how many passwordless ceremonies one IP may start (each is a store write).
    pub ceremony_limiter: Limiter,
    /// The Telegram bot, when `[telegram]` is configured.
    pub telegram: Option<crate::notify::telegram::TelegramBot>,
    /// The WebAuthn relying party, when passkeys are on.
    pub webauthn: Option<crate::mfa::webauthn::RelyingParty>,
}

impl AppState {
    /// Opens the configured store (see [`open_store`]) and builds the state on it.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        let store = open_store(&config, true).await?;
        Self::with_store(config, store).await
    }

    /// Builds the state around an already open store.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Result<Arc<Self>> {
        crate::texts::brand::install(config.brand.clone());
        let secret = load_or_create_secret(
            config.session.secret.as_ref().map(|s| s.expose()),
            &config.data_dir,
        )?;
        let sessions = Sessions::new(&secret, config.session.clone(), store.clone())
            .with_second_factor_check(crate::mfa::SECOND_FACTOR_CHECK);
        let passwords = Passwords::new(&config.password)?;
        let limiter = Limiter::new(config.regulation.clone(), store.clone(), "login");
        let key = load_or_create_key(
            config.encryption_key.as_ref().map(|s| s.expose()),
            &config.data_dir,
        )?;
        crate::crypto::check_key_fingerprints(
            store.as_ref(),
            &[
                ("session.secret", &secret),
                ("storage.encryption_key", &key),
            ],
            false,
        )
        .await?;
        Ok(Arc::new(AppState {
            sealer: Sealer::new(&key),
            code_hasher: CodeHasher::new(&key),
            mailer: Arc::new(Mailer::new(config.smtp.clone(), store.clone())),
            phone: config
                .phone
                .as_ref()
                .map(|p| crate::notify::phone::provider(&p.provider)),
            phone_budgets: crate::mfa::phone::Budgets::new(store.clone()),
            metrics: Default::default(),
            telegram: config
                .telegram
                .clone()
                .map(|c| crate::notify::telegram::TelegramBot::new(c, store.clone())),
            webauthn: config
                .webauthn
                .as_ref()
                .map(crate::mfa::webauthn::RelyingParty::new),
            ceremony_limiter: Limiter::new(
                crate::config::Regulation {
                    max_retries: 30,
                    find_time: std::time::Duration::from_secs(60),
                    ban_time: std::time::Duration::from_secs(60),
                },
                store.clone(),
                "ceremony",
            ),
            reset_limiter: Limiter::new(
                crate::config::Regulation {
                    max_retries: config.password_reset.requests_per_hour,
                    find_time: std::time::Duration::from_secs(3600),
                    ban_time: std::time::Duration::from_secs(3600),
                },
                store.clone(),
                "reset",
            ),
            config,
            store,
            sessions,
            passwords,
            limiter,
        }))
    }
}

/// Opens the configured store: sled in the data directory (watched, when `watch`:
/// health's periodic write and the reopening after a failure, for as long as it is
/// open), or PostgreSQL (migrated to this version's schema).
pub async fn open_store(config: &Config, watch: bool) -> Result<Arc<dyn Store>> {
    match &config.storage {
        crate::config::StorageBackend::Sled => {
            let sled = SledStore::open(&config.data_dir)?;
            if watch {
                sled.watch(config.health_write_interval);
            }
            Ok(Arc::new(KvStore::new(sled)?))
        }
        crate::config::StorageBackend::Postgres {
            url,
            pool_size,
            cache_ttl,
            outage_grace,
        } => {
            let store = crate::store::PgStore::connect(url.expose(), *pool_size, *cache_ttl)
                .await?
                .with_outage_grace(*outage_grace);
            Ok(Arc::new(if watch { store.listen_now() } else { store }))
        }
    }
}

impl crate::mfa::Services for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn sealer(&self) -> &Sealer {
        &self.sealer
    }
    fn code_hasher(&self) -> &CodeHasher {
        &self.code_hasher
    }
    fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }
    fn phone(&self) -> &Option<Box<dyn crate::notify::phone::PhoneProvider>> {
        &self.phone
    }
    fn telegram(&self) -> &Option<crate::notify::telegram::TelegramBot> {
        &self.telegram
    }
    fn webauthn(&self) -> &Option<crate::mfa::webauthn::RelyingParty> {
        &self.webauthn
    }
    fn mailer(&self) -> &Mailer {
        &self.mailer
    }
    fn phone_budgets(&self) -> &crate::mfa::phone::Budgets {
        &self.phone_budgets
    }
}

impl crate::telegram_bot::Services for AppState {
    fn limiter(&self) -> &crate::auth::limiter::Limiter {
        &self.limiter
    }
}
