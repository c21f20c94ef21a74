//! Passkeys and security keys (WebAuthn), as a second factor and for passwordless login.
//!
//! Built on webauthn-rs's engine (`webauthn-rs-core`) rather than its `Passkey` wrapper,
//! because gatehouse needs what the wrapper fixes otherwise: user verification
//! *preferred* (a security key without a PIN still works as a second factor), and
//! discoverable credentials where the authenticator can make them (for passwordless).
//!
//! Records: `Factors / user \0 webauthn` holds the user's random WebAuthn user handle and
//! their devices; `Tokens / webauthn-cred \0 <credential id>` maps a credential to its
//! owner (one credential, one account). A started ceremony lives in
//! `Tokens / webauthn-ceremony \0 <kind> \0 <hash of owner and ceremony id>` until it is
//! used once or expires. The owner is the session id, or before login the browser's CSRF
//! cookie; the random ceremony id travels in the page, so several tabs can each finish
//! their own ceremony.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationResult, AuthenticationState,
    CreationChallengeResponse, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, RequestChallengeResponse, RequestRegistrationExtensions,
    ResidentKeyRequirement, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

use super::Services;
use crate::audit;
use crate::config::WebauthnConfig;
use crate::error::{Error, Result};
use crate::store::{user_key, Store, Timestamp};

/// The longest device name, in characters.
pub const NAME_MAX: usize = 64;

/// The relying party: the engine built from `[webauthn]`.
pub struct RelyingParty {
    core: WebauthnCore,
    ttl: u64,
}

impl RelyingParty {
    pub fn new(config: &WebauthnConfig) -> Self {
        RelyingParty {
            core: WebauthnCore::new_unsafe_experts_only(
                &config.rp_name,
                &config.rp_id,
                config.origins.clone(),
                config.timeout,
                Some(config.allow_subdomains),
                Some(config.allow_subdomains),
            ),
            ttl: config.timeout.as_secs(),
        }
    }
}

/// One registered authenticator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    /// A short id for forms.
    pub key: String,
    /// Chosen by the user at registration; fixed afterwards.
    pub name: String,
    pub credential: Credential,
    pub added_at: Timestamp,
    #[serde(default)]
    pub last_used: Option<Timestamp>,
    /// Accepted for "sign in with a passkey" (no password).
    #[serde(default)]
    pub passwordless: bool,
    /// What the browser said about a resident (discoverable) key, when it said.
    #[serde(default)]
    pub discoverable: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DeviceSet {
    /// The WebAuthn user handle (random, base64url): never the user name.
    handle: String,
    devices: Vec<Device>,
}

pub(crate) fn set_key(username: &str) -> String {
    user_key(username, "webauthn")
}

fn index_key(credential_id: &[u8]) -> String {
    format!("webauthn-cred\0{}", B64.encode(credential_id))
}

async fn load(store: &dyn Store, username: &str) -> Result<Option<DeviceSet>> {
    crate::store::get_factor(store, &set_key(username)).await
}

/// Applies `change` to the user's device set atomically.
async fn update<T: Send>(
    store: &dyn Store,
    username: &str,
    change: impl FnMut(&mut DeviceSet) -> T + Send,
) -> Result<T> {
    crate::store::update_factor(store, &set_key(username), change).await
}

/// The user's devices, oldest first.
pub async fn devices(store: &dyn Store, username: &str) -> Result<Vec<Device>> {
    Ok(load(store, username)
        .await?
        .map(|s| s.devices)
        .unwrap_or_default())
}

/// Whether the user has at least one device.
pub async fn is_enabled(store: &dyn Store, username: &str) -> Result<bool> {
    enabled_in(store.get_factor(&set_key(username)).await?.as_deref())
}

/// Whether a stored set (`None`: none) has a device.
pub(crate) fn enabled_in(raw: Option<&[u8]>) -> Result<bool> {
    Ok(raw
        .map(serde_json::from_slice::<DeviceSet>)
        .transpose()?
        .is_some_and(|s| !s.devices.is_empty()))
}

/// Removes every device (and the user handle). Returns whether there were any.
pub async fn disable(store: &dyn Store, username: &str) -> Result<bool> {
    let Some(set) = load(store, username).await? else {
        return Ok(false);
    };
    for d in &set.devices {
        store
            .delete_token(&index_key(&d.credential.cred_id))
            .await?;
    }
    store.delete_factor(&set_key(username)).await?;
    Ok(!set.devices.is_empty())
}

/// Removes one device; returns it (and how many are left) when it existed.
pub async fn delete(
    store: &dyn Store,
    username: &str,
    key: &str,
) -> Result<Option<(Device, usize)>> {
    let removed = update(store, username, |set| {
        let at = set.devices.iter().position(|d| d.key == key)?;
        let device = set.devices.remove(at);
        Some((device, set.devices.len()))
    })
    .await?;
    if let Some((device, _)) = &removed {
        store
            .delete_token(&index_key(&device.credential.cred_id))
            .await?;
    }
    Ok(removed)
}

/// Turns passwordless login on or off for one device; returns the device's name.
pub async fn set_passwordless(
    store: &dyn Store,
    username: &str,
    key: &str,
    on: bool,
) -> Result<Option<String>> {
    update(store, username, |set| {
        let device = set.devices.iter_mut().find(|d| d.key == key)?;
        device.passwordless = on;
        Some(device.name.clone())
    })
    .await
}

/// Why a device name was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong,
    Taken,
}

/// The name as it will be saved (trimmed), or what is wrong with it.
pub async fn check_name(
    store: &dyn Store,
    username: &str,
    name: &str,
) -> Result<std::result::Result<String, NameProblem>> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(Err(NameProblem::Empty));
    }
    if name.chars().count() > NAME_MAX {
        return Ok(Err(NameProblem::TooLong));
    }
    let taken = devices(store, username)
        .await?
        .iter()
        .any(|d| d.name.to_lowercase() == name.to_lowercase());
    Ok(if taken {
        Err(NameProblem::Taken)
    } else {
        Ok(name.to_string())
    })
}

/// Why a ceremony's answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No ceremony is waiting (never started, used already, or too old).
    Expired,
    /// The browser's answer could not be read.
    Malformed,
    /// Signature, challenge, origin or relying party did not check out.
    Invalid,
    /// The credential is not registered (to this user, for this purpose).
    UnknownCredential,
    /// The device is not allowed for passwordless login.
    NotPasswordless,
    /// Passwordless login without user verification (PIN, biometrics).
    NotVerified,
    /// The signature counter went backwards: possibly a cloned key.
    ClonedKey,
    /// This authenticator already holds a credential for this account.
    AlreadyRegistered,
    /// The credential belongs to another account.
    TakenByAnother,
}

impl Refusal {
    pub fn id(self) -> &'static str {
        match self {
            Refusal::Expired => "expired",
            Refusal::Malformed => "malformed",
            Refusal::Invalid => "invalid",
            Refusal::UnknownCredential => "unknown_credential",
            Refusal::NotPasswordless => "not_passwordless",
            Refusal::NotVerified => "not_verified",
            Refusal::ClonedKey => "cloned_key",
            Refusal::AlreadyRegistered => "already_registered",
            Refusal::TakenByAnother => "taken_by_another",
        }
    }
}

fn refusal_of(e: &WebauthnError) -> Refusal {
    match e {
        WebauthnError::CredentialPossibleCompromise => Refusal::ClonedKey,
        WebauthnError::CredentialNotFound => Refusal::UnknownCredential,
        WebauthnError::CredentialAlteredAlgFromRequest
        | WebauthnError::CredentialExcludedFromRequest => Refusal::AlreadyRegistered,
        _ => Refusal::Invalid,
    }
}

/// What a started ceremony remembers.
#[derive(Serialize, Deserialize)]
enum Pending {
    Register {
        username: String,
        name: String,
        state: RegistrationState,
    },
    SecondStep {
        username: String,
        state: AuthenticationState,
    },
    Passwordless {
        state: AuthenticationState,
    },
}

#[derive(Serialize, Deserialize)]
struct Ceremony {
    pending: Pending,
    expires_at: Timestamp,
}

const CEREMONY_PREFIX: &str = "webauthn-ceremony\0";

fn ceremony_key(kind: &str, owner: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("{owner}\0{id}").as_bytes());
    format!("{CEREMONY_PREFIX}{kind}\0{}", hex::encode(digest))
}

/// Stores a started ceremony; returns its id (for the page to send back).
async fn put_ceremony(
    state: &dyn Services,
    relying: &RelyingParty,
    kind: &str,
    owner: &str,
    pending: Pending,
    now: Timestamp,
) -> Result<String> {
    let id = crate::basics::random_token(16);
    crate::store::put_token(
        state.store().as_ref(),
        &ceremony_key(kind, owner, &id),
        &Ceremony {
            pending,
            expires_at: now + relying.ttl,
        },
        Some(now + relying.ttl),
    )
    .await?;
    Ok(id)
}

/// Takes the waiting ceremony out of the store (so it works once), if not expired.
async fn take_ceremony(
    state: &dyn Services,
    kind: &str,
    owner: &str,
    id: &str,
    now: Timestamp,
) -> Result<Option<Pending>> {
    let store = state.store().as_ref();
    let key = ceremony_key(kind, owner, id);
    let Some(raw) = store.get_token(&key).await? else {
        return Ok(None);
    };
    if !store.swap_token(&key, Some(&raw), None, None).await? {
        return Ok(None);
    }
    let ceremony: Ceremony = serde_json::from_slice(&raw)?;
    Ok((ceremony.expires_at > now).then_some(ceremony.pending))
}

/// Removes expired ceremonies (called by the housekeeping service).
pub async fn sweep_expired(state: &dyn Services, now: Timestamp) {
    let Ok(entries) = state.store().tokens_with_prefix("").await else {
        return;
    };
    for (key, raw) in entries
        .into_iter()
        .filter(|(k, _)| k.starts_with(CEREMONY_PREFIX))
    {
        if serde_json::from_slice::<Ceremony>(&raw).map_or(true, |c| c.expires_at <= now) {
            let _ = state.store().delete_token(&key).await;
        }
    }
}

fn relying(state: &dyn Services) -> Result<&RelyingParty> {
    state
        .webauthn()
        .as_ref()
        .ok_or_else(|| Error::Internal("WebAuthn is not configured".into()))
}

fn engine_error(e: WebauthnError) -> Error {
    Error::Internal(format!("webauthn: {e}"))
}

/// Starts adding a device called `name` (already checked) for the signed-in user.
/// Returns the options for `navigator.credentials.create`.
pub async fn register_start(
    state: &dyn Services,
    user: &crate::store::User,
    owner: &str,
    name: &str,
    now: Timestamp,
) -> Result<(CreationChallengeResponse, String)> {
    let relying = relying(state)?;
    let username = &user.username;
    let (handle, existing) = update(state.store().as_ref(), username, |set| {
        if set.handle.is_empty() {
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            set.handle = B64.encode(bytes);
        }
        let existing: Vec<_> = set
            .devices
            .iter()
            .map(|d| d.credential.cred_id.clone())
            .collect();
        (set.handle.clone(), existing)
    })
    .await?;
    let handle = B64
        .decode(&handle)
        .map_err(|e| Error::Internal(format!("webauthn user handle: {e}")))?;
    let display = user.shown_name();
    let builder = relying
        .core
        .new_challenge_register_builder(&handle, username, display)
        .map_err(engine_error)?
        .attestation(AttestationConveyancePreference::None)
        .user_verification_policy(UserVerificationPolicy::Preferred)
        .exclude_credentials(Some(existing))
        .require_resident_key(false)
        .extensions(Some(RequestRegistrationExtensions {
            cred_protect: None,
            uvm: None,
            cred_props: Some(true),
            min_pin_length: None,
            hmac_create_secret: None,
        }));
    let (mut options, registration) = relying
        .core
        .generate_challenge_register(builder)
        .map_err(engine_error)?;
    // A discoverable credential where the authenticator can store one, so that the
    // device can later be used without a password; the engine only knows required or
    // discouraged, and does not enforce either.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Preferred);
        selection.require_resident_key = false;
    }
    let id = put_ceremony(
        state,
        relying,
        "register",
        owner,
        Pending::Register {
            username: username.clone(),
            name: name.to_string(),
            state: registration,
        },
        now,
    )
    .await?;
    Ok((options, id))
}

/// Finishes adding a device from the browser's answer (JSON).
pub async fn register_finish(
    state: &dyn Services,
    username: &str,
    owner: &str,
    ceremony: &str,
    answer: &str,
    now: Timestamp,
) -> Result<std::result::Result<Device, Refusal>> {
    let relying = relying(state)?;
    let Some(Pending::Register {
        username: started_by,
        name,
        state: registration,
    }) = take_ceremony(state, "register", owner, ceremony, now).await?
    else {
        return Ok(Err(Refusal::Expired));
    };
    if started_by != username {
        return Ok(Err(Refusal::Expired));
    }
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(answer) else {
        return Ok(Err(Refusal::Malformed));
    };
    let credential = match relying
        .core
        .register_credential(&answer, &registration, None)
    {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(user = username, error = %e, "webauthn registration refused");
            return Ok(Err(refusal_of(&e)));
        }
    };
    let store = state.store().as_ref();
    let index = index_key(&credential.cred_id);
    if !store
        .swap_token(&index, None, Some(username.as_bytes()), None)
        .await?
    {
        let owner = store.get_token(&index).await?.unwrap_or_default();
        return Ok(Err(if owner == username.as_bytes() {
            Refusal::AlreadyRegistered
        } else {
            Refusal::TakenByAnother
        }));
    }
    let device = Device {
        key: crate::basics::random_token(6),
        name: name.clone(),
        discoverable: answer.extensions.cred_props.as_ref().and_then(|p| p.rk),
        credential,
        added_at: now,
        last_used: None,
        passwordless: false,
    };
    let saved = device.clone();
    let name_taken = update(store, username, |set| {
        if set
            .devices
            .iter()
            .any(|d| d.name.to_lowercase() == name.to_lowercase())
        {
            return true;
        }
        set.devices.push(saved.clone());
        false
    })
    .await?;
    if name_taken {
        store.delete_token(&index).await?;
        return Ok(Err(Refusal::Expired));
    }
    audit!(
        "webauthn_device_added",
        user = username,
        device = device.name
    );
    Ok(Ok(device))
}

/// Starts the second step with the user's devices; `None` when they have none.
pub async fn second_step_start(
    state: &dyn Services,
    username: &str,
    owner: &str,
    now: Timestamp,
) -> Result<Option<(RequestChallengeResponse, String)>> {
    let relying = relying(state)?;
    let credentials: Vec<Credential> = devices(state.store().as_ref(), username)
        .await?
        .into_iter()
        .map(|d| d.credential)
        .collect();
    if credentials.is_empty() {
        return Ok(None);
    }
    let builder = relying
        .core
        .new_challenge_authenticate_builder(credentials, Some(UserVerificationPolicy::Preferred))
        .map_err(engine_error)?
        .allow_backup_eligible_upgrade(true);
    let (options, authentication) = relying
        .core
        .generate_challenge_authenticate(builder)
        .map_err(engine_error)?;
    let id = put_ceremony(
        state,
        relying,
        "second",
        owner,
        Pending::SecondStep {
            username: username.to_string(),
            state: authentication,
        },
        now,
    )
    .await?;
    Ok(Some((options, id)))
}

/// Checks an assertion against one of `username`'s devices and records its use.
async fn check_assertion(
    state: &dyn Services,
    username: &str,
    answer: &PublicKeyCredential,
    authentication: &AuthenticationState,
    passwordless: bool,
    now: Timestamp,
) -> Result<std::result::Result<Device, Refusal>> {
    let relying = relying(state)?;
    let store = state.store().as_ref();
    let Some(set) = load(store, username).await? else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    let Some(device) = set
        .devices
        .iter()
        .find(|d| d.credential.cred_id.as_slice() == answer.raw_id.as_slice())
    else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    if let Some(handle) = &answer.response.user_handle {
        if B64.encode(handle) != set.handle {
            return Ok(Err(Refusal::UnknownCredential));
        }
    }
    let result: AuthenticationResult = match relying.core.authenticate_single_credential(
        answer,
        authentication,
        &device.credential,
    ) {
        Ok(r) => r,
        Err(e) => {
            let refusal = refusal_of(&e);
            tracing::info!(user = username, device = device.name, error = %e, "webauthn assertion refused");
            if refusal == Refusal::ClonedKey {
                tracing::warn!(
                    user = username,
                    device = device.name,
                    stored_counter = device.credential.counter,
                    "webauthn signature counter went backwards: possibly a cloned key"
                );
                audit!(
                    "webauthn_counter_regressed",
                    user = username,
                    device = device.name
                );
            }
            return Ok(Err(refusal));
        }
    };
    // Only after the signature checked out: nothing is said about a credential to
    // someone who cannot use it.
    if passwordless && !device.passwordless {
        return Ok(Err(Refusal::NotPasswordless));
    }
    if passwordless && !result.user_verified() {
        return Ok(Err(Refusal::NotVerified));
    }
    let key = device.key.clone();
    let used = update(store, username, |set| {
        let device = set.devices.iter_mut().find(|d| d.key == key)?;
        if result.counter() > device.credential.counter {
            device.credential.counter = result.counter();
        }
        device.credential.backup_state = result.backup_state();
        device.credential.backup_eligible = result.backup_eligible();
        device.last_used = Some(now);
        Some(device.clone())
    })
    .await?;
    Ok(used.ok_or(Refusal::UnknownCredential))
}

/// Finishes the second step from the browser's answer (JSON).
pub async fn second_step_finish(
    state: &dyn Services,
    username: &str,
    owner: &str,
    ceremony: &str,
    answer: &str,
    now: Timestamp,
) -> Result<std::result::Result<Device, Refusal>> {
    let Some(Pending::SecondStep {
        username: started_by,
        state: authentication,
    }) = take_ceremony(state, "second", owner, ceremony, now).await?
    else {
        return Ok(Err(Refusal::Expired));
    };
    if started_by != username {
        return Ok(Err(Refusal::Expired));
    }
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(answer) else {
        return Ok(Err(Refusal::Malformed));
    };
    check_assertion(state, username, &answer, &authentication, false, now).await
}

/// Starts a passwordless login (any discoverable credential) for this browser.
pub async fn passwordless_start(
    state: &dyn Services,
    owner: &str,
    now: Timestamp,
) -> Result<(RequestChallengeResponse, String)> {
    let relying = relying(state)?;
    let builder = relying
        .core
        .new_challenge_authenticate_builder(Vec::new(), Some(UserVerificationPolicy::Preferred))
        .map_err(engine_error)?;
    let (options, authentication) = relying
        .core
        .generate_challenge_authenticate(builder)
        .map_err(engine_error)?;
    let id = put_ceremony(
        state,
        relying,
        "passwordless",
        owner,
        Pending::Passwordless {
            state: authentication,
        },
        now,
    )
    .await?;
    Ok((options, id))
}

/// What a passwordless attempt came to: the user it proved, or why not (with the user
/// the credential points at, when known, for the brute-force limits).
pub type PasswordlessOutcome = std::result::Result<(String, Device), (Refusal, Option<String>)>;

/// Finishes a passwordless login from the browser's answer (JSON).
pub async fn passwordless_finish(
    state: &dyn Services,
    owner: &str,
    ceremony: &str,
    answer: &str,
    now: Timestamp,
) -> Result<PasswordlessOutcome> {
    let Some(Pending::Passwordless {
        state: authentication,
    }) = take_ceremony(state, "passwordless", owner, ceremony, now).await?
    else {
        return Ok(Err((Refusal::Expired, None)));
    };
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(answer) else {
        return Ok(Err((Refusal::Malformed, None)));
    };
    let Some(owner) = state
        .store()
        .get_token(&index_key(&answer.raw_id))
        .await?
        .and_then(|raw| String::from_utf8(raw).ok())
    else {
        return Ok(Err((Refusal::UnknownCredential, None)));
    };
    if answer.response.user_handle.is_none() {
        return Ok(Err((Refusal::Invalid, Some(owner))));
    }
    Ok(
        match check_assertion(state, &owner, &answer, &authentication, true, now).await? {
            Ok(device) => Ok((owner, device)),
            Err(refusal) => Err((refusal, Some(owner))),
        },
    )
}

/// A device's credential id in the form browsers use (base64url), for tests and logs.
pub fn credential_id_text(device: &Device) -> String {
    B64.encode(&device.credential.cred_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn device_names_are_required_short_and_unique_per_user() {
        let store = crate::store::MemoryEngine::store();
        assert_eq!(
            check_name(&store, "ann", "   ").await.unwrap(),
            Err(NameProblem::Empty)
        );
        assert_eq!(
            check_name(&store, "ann", &"x".repeat(NAME_MAX + 1))
                .await
                .unwrap(),
            Err(NameProblem::TooLong)
        );
        assert_eq!(
            check_name(&store, "ann", &"é".repeat(NAME_MAX))
                .await
                .unwrap(),
            Ok("é".repeat(NAME_MAX))
        );
        assert!(!is_enabled(&store, "ann").await.unwrap());
    }
}
