//! The concurrent-update cases of the login and factor logic, made deterministic on the
//! in-memory store: each test runs the racing operation exactly between the steps of
//! the other (or both at once on several threads), and checks that the revocation, the
//! disable or the first use wins. The same store code runs on sled.

use std::sync::Arc;

use crate::admin::{execute, Command};
use crate::auth::session::Identity;
use crate::state::AppState;
use crate::store::{AuthLevel, MemoryEngine};

/// A gateway on the in-memory store, with `ann` (no second factor yet).
async fn gateway() -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\ndata_dir = \"{}\"\n[password]\nmemory_kib = 8192\niterations = 1\nparallelism = 1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let config = crate::config::load(Some(&file)).unwrap();
    let state = AppState::with_store(config, Arc::new(MemoryEngine::store()))
        .await
        .unwrap();
    let hash = state.passwords.hash_now("a password").unwrap();
    execute(
        state.store.as_ref(),
        Command::UserAdd {
            username: "ann".into(),
            email: "ann@example.test".into(),
            display_name: String::new(),
            groups: vec![],
            password_hash: hash,
        },
    )
    .await
    .unwrap();
    (state, dir)
}

/// `ann` past her password, her second step still owed (as the login leaves her).
async fn pending_session(state: &AppState) -> crate::store::SessionRecord {
    let user = state.store.get_user("ann").await.unwrap().unwrap();
    state
        .sessions
        .create(
            &user,
            AuthLevel::SecondFactorPending,
            false,
            "ip",
            "ua",
            crate::basics::now(),
        )
        .await
        .unwrap()
}

async fn signed_in(state: &AppState, session_id: &str) -> Option<Identity> {
    let cookie = state.sessions.sign(session_id);
    state
        .sessions
        .resolve(&cookie, crate::basics::now())
        .await
        .unwrap()
}

async fn disable(state: &AppState) {
    execute(
        state.store.as_ref(),
        Command::UserSetDisabled {
            username: "ann".into(),
            disabled: true,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_revocation_between_a_logins_check_and_its_session_wins() {
    let (state, _dir) = gateway().await;
    // The login has read the user and checked the password...
    let user = state.store.get_user("ann").await.unwrap().unwrap();
    // ...when the operator ends every session of the user...
    execute(
        state.store.as_ref(),
        Command::SessionsRevoke {
            id: None,
            username: Some("ann".into()),
        },
    )
    .await
    .unwrap();
    // ...and then the login writes its session: it grants nothing.
    let now = crate::basics::now();
    let session = state
        .sessions
        .create(&user, AuthLevel::OneFactor, false, "ip", "ua", now)
        .await
        .unwrap();
    assert!(signed_in(&state, &session.id).await.is_none());
}

#[tokio::test]
async fn a_disable_between_a_second_steps_check_and_its_upgrade_wins() {
    let (state, _dir) = gateway().await;
    let now = crate::basics::now();
    let pending = pending_session(&state).await;
    // The code was right; the operator disables the user before the upgrade is written.
    disable(&state).await;
    let upgraded = state
        .sessions
        .upgrade(&pending, AuthLevel::TwoFactor, "totp", now)
        .await;
    assert!(matches!(upgraded, Err(crate::error::Error::SessionEnded)));
    assert!(state.store.sessions_of("ann").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_disable_right_after_an_upgrade_ends_the_upgraded_session() {
    let (state, _dir) = gateway().await;
    let now = crate::basics::now();
    let pending = pending_session(&state).await;
    let upgraded = state
        .sessions
        .upgrade(&pending, AuthLevel::TwoFactor, "totp", now)
        .await
        .unwrap();
    assert!(signed_in(&state, &upgraded.id).await.is_some());
    disable(&state).await;
    assert!(signed_in(&state, &upgraded.id).await.is_none());
    assert!(signed_in(&state, &pending.id).await.is_none());
}

#[tokio::test]
async fn a_revoked_pending_session_cannot_be_upgraded() {
    let (state, _dir) = gateway().await;
    let now = crate::basics::now();
    let pending = pending_session(&state).await;
    state.store.delete_session(&pending.id).await.unwrap();
    assert!(state
        .sessions
        .upgrade(&pending, AuthLevel::TwoFactor, "totp", now)
        .await
        .is_err());
    assert!(state.store.sessions_of("ann").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_backup_code_used_twice_at_once_lets_exactly_one_in() {
    let (state, _dir) = gateway().await;
    let codes = crate::mfa::backup::generate(state.as_ref(), "ann", crate::basics::now())
        .await
        .unwrap();
    for code in codes.iter().take(5) {
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let (state, code) = (state.clone(), code.clone());
                tokio::spawn(async move {
                    crate::mfa::backup::verify(state.as_ref(), "ann", &code)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut accepted = 0;
        for t in tries {
            accepted += usize::from(t.await.unwrap());
        }
        assert_eq!(accepted, 1, "code {code}");
    }
    assert_eq!(
        crate::mfa::backup::remaining(state.store.as_ref(), "ann")
            .await
            .unwrap(),
        codes.len() - 5
    );
}

#[tokio::test]
async fn a_backup_code_checked_on_a_stale_record_is_not_accepted_again() {
    let (state, _dir) = gateway().await;
    let codes = crate::mfa::backup::generate(state.as_ref(), "ann", crate::basics::now())
        .await
        .unwrap();
    let key = crate::store::user_key("ann", "backup");
    // One use reads the record; the other uses the code and writes first.
    let stale = state
        .store
        .get_factor(&key)
        .await
        .unwrap()
        .expect("the codes are stored");
    assert!(crate::mfa::backup::verify(state.as_ref(), "ann", &codes[0])
        .await
        .unwrap());
    // The first one's write, based on what it read, is refused.
    assert!(!state
        .store
        .swap_factor(&key, Some(&stale), Some(&stale))
        .await
        .unwrap());
    assert!(
        !crate::mfa::backup::verify(state.as_ref(), "ann", &codes[0])
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_password_change_and_a_revocation_of_the_kept_session_end_everything() {
    let (state, _dir) = gateway().await;
    let user = state.store.get_user("ann").await.unwrap().unwrap();
    let now = crate::basics::now();
    let mine = state
        .sessions
        .create(&user, AuthLevel::OneFactor, false, "ip", "ua", now)
        .await
        .unwrap();
    let other = state
        .sessions
        .create(&user, AuthLevel::OneFactor, false, "ip", "ua", now)
        .await
        .unwrap();
    // The session the change would keep is revoked first: it is not brought back.
    state.store.delete_session(&mine.id).await.unwrap();
    let (_, kept, _) =
        crate::auth::session::end_sessions(state.store.as_ref(), "ann", Some(&mine), &mut |_| {})
            .await
            .unwrap()
            .unwrap();
    assert!(kept.is_none());
    assert!(signed_in(&state, &mine.id).await.is_none());
    assert!(signed_in(&state, &other.id).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_for_an_email_code_send_exactly_one() {
    use crate::mfa::email::{send_code, Purpose, SendOutcome};
    let (state, _dir) = gateway().await;
    let user = state.store.get_user("ann").await.unwrap().unwrap();
    let t = crate::texts::texts_for(None);
    let now = crate::basics::now();
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (state, user) = (state.clone(), user.clone());
            tokio::spawn(async move {
                send_code(state.as_ref(), &user, Purpose::Login, t, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut sent = 0;
    for request in requests {
        match request.await.unwrap() {
            SendOutcome::Sent { .. } => sent += 1,
            SendOutcome::Cooldown(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent, 1, "the cooldown is checked and taken in one step");
}

#[tokio::test]
async fn removing_a_phone_number_frees_it_for_another_account_in_the_same_step() {
    let (state, _dir) = gateway().await;
    let record = serde_json::json!({
        "numbers": [{"number": "+380501234567", "confirmed": true, "added_at": 1}],
        "confirming": null,
        "attempt": null
    });
    state
        .store
        .put_factor(
            &crate::store::user_key("ann", "phone"),
            record.to_string().as_bytes(),
        )
        .await
        .unwrap();
    state
        .store
        .put_token("phone\0+380501234567", b"ann", None)
        .await
        .unwrap();
    assert!(
        crate::mfa::phone::remove_number(state.as_ref(), "ann", "+380501234567")
            .await
            .unwrap()
    );
    assert!(state
        .store
        .get_token("phone\0+380501234567")
        .await
        .unwrap()
        .is_none());
    assert!(crate::mfa::phone::numbers(state.store.as_ref(), "ann")
        .await
        .unwrap()
        .is_empty());
}
