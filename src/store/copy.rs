//! `gatehouse storage copy`: moves a store's lasting state into another backend, part by
//! part through the store traits (so any pair of backends works): users, second-factor
//! records, sessions and tokens. Counters (bans, budgets) start afresh and queues are
//! not moved: copy with the servers stopped and the queues drained.

use super::Store;
use crate::error::{Error, Result};

/// What was copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub users: usize,
    pub factors: usize,
    pub sessions: usize,
    pub tokens: usize,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "copied {} users, {} second-factor records, {} sessions, {} tokens",
            self.users, self.factors, self.sessions, self.tokens
        )
    }
}

/// Copies `from` into `to`, which must hold no users yet.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied> {
    if !to.list_users().await?.is_empty() {
        return Err(Error::Invalid(
            "the target store already has users: copy into an empty one".into(),
        ));
    }
    let mut copied = Copied::default();
    for user in from.list_users().await? {
        to.put_user(&user).await?;
        copied.users += 1;
        for (name, value) in from.factors_of(&user.username).await? {
            to.put_factor(&super::user_key(&user.username, &name), &value)
                .await?;
            copied.factors += 1;
        }
    }
    let sessions = from.all_sessions().await?;
    for chunk in sessions.chunks(500) {
        to.put_sessions(chunk).await?;
    }
    copied.sessions = sessions.len();
    // Tokens keep their values and the end the store enforces.
    for (key, value, end) in from.tokens_with_ends("").await? {
        to.put_token(&key, &value, end).await?;
        copied.tokens += 1;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        AuthLevel, Factors, MemoryEngine, SessionRecord, Sessions, Tokens, User, Users,
    };

    #[tokio::test]
    async fn everything_lasting_is_copied_and_a_full_target_is_refused() {
        let from = MemoryEngine::store();
        let user = User {
            username: "ann".into(),
            display_name: String::new(),
            email: String::new(),
            groups: vec![],
            password_hash: "h".into(),
            disabled: false,
            created_at: 1,
            last_method: None,
            session_generation: 3,
            trust_generation: 1,
        };
        from.put_user(&user).await.unwrap();
        from.put_factor("ann\0totp", b"{}").await.unwrap();
        from.put_token("phone\0+1", b"ann", None).await.unwrap();
        let end = crate::basics::now() + 600;
        from.put_token("challenge\0x", b"c", Some(end))
            .await
            .unwrap();
        from.put_session(&SessionRecord {
            id: "s".into(),
            username: "ann".into(),
            level: AuthLevel::TwoFactor,
            created_at: 1,
            last_seen: 1,
            expires_at: u64::MAX / 2,
            remember_me: false,
            ip: "ip".into(),
            user_agent: "ua".into(),
            password_at: 1,
            identity_at: 0,
            generation: 3,
            method: "password".into(),
        })
        .await
        .unwrap();
        let to = MemoryEngine::store();
        let copied = copy(&from, &to).await.unwrap();
        assert_eq!(
            copied,
            Copied {
                users: 1,
                factors: 1,
                sessions: 1,
                tokens: 2
            }
        );
        assert_eq!(
            to.tokens_with_ends("").await.unwrap(),
            vec![
                ("challenge\0x".to_string(), b"c".to_vec(), Some(end)),
                ("phone\0+1".to_string(), b"ann".to_vec(), None),
            ],
            "tokens keep their values and ends"
        );
        assert_eq!(to.get_user("ann").await.unwrap(), Some(user));
        assert_eq!(to.sessions_of("ann").await.unwrap().len(), 1);
        assert!(to.get_factor("ann\0totp").await.unwrap().is_some());
        assert!(copy(&from, &to).await.is_err(), "the target has users now");
    }
}
