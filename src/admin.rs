//! Operator commands (`gatehouse user …`, `gatehouse sessions …`) and the local admin
//! socket that lets them work while `serve` runs.
//!
//! sled allows one process per data directory. The server therefore listens on
//! `DATA_DIR/admin.sock` (mode 0600: only the owner of the data directory may use it);
//! the CLI first tries that socket and, when no server answers, opens the store
//! itself. Either way the same [`execute`] runs the command. Passwords are hashed by
//! the CLI before anything is sent.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit;
use crate::auth::session::end_sessions;
use crate::basics::now;
use crate::error::{Error, Result};
use crate::store::{Store, User};

/// One operator command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    UserAdd {
        username: String,
        email: String,
        display_name: String,
        groups: Vec<String>,
        password_hash: String,
    },
    UserPasswd {
        username: String,
        password_hash: String,
    },
    UserList,
    UserSetDisabled {
        username: String,
        disabled: bool,
    },
    UserDelete {
        username: String,
    },
    UserShow {
        username: String,
    },
    UserReset2fa {
        username: String,
    },
    SessionsList {
        username: Option<String>,
    },
    SessionsRevoke {
        id: Option<String>,
        username: Option<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    ok: bool,
    output: String,
}

/// The admin socket's path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Checks a user name: lower case letters, digits, `.`, `_`, `-`, `@`; 1–64 chars.
pub fn valid_username(name: &str) -> Result<String> {
    let lower = name.trim().to_lowercase();
    let ok = !lower.is_empty()
        && lower.len() <= 64
        && lower
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(lower)
    } else {
        Err(Error::Invalid(format!(
            "invalid user name {name:?}: use 1-64 letters, digits, '.', '_', '-', '@'"
        )))
    }
}

/// Refuses text that could break an HTTP header (control characters) or a list (`,`).
fn header_safe(what: &str, value: &str, allow_comma: bool) -> Result<()> {
    if value.chars().any(|c| c.is_control()) || (!allow_comma && value.contains(',')) {
        return Err(Error::Invalid(format!(
            "invalid {what} {value:?}: no control characters{}",
            if allow_comma { "" } else { " or commas" }
        )));
    }
    Ok(())
}

fn format_time(ts: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts))
        .to_string()
}

/// Runs a command against the store; the text is what the CLI prints.
pub async fn execute(store: &dyn Store, command: Command) -> Result<String> {
    match command {
        Command::UserAdd {
            username,
            email,
            display_name,
            groups,
            password_hash,
        } => {
            let username = valid_username(&username)?;
            header_safe("email", &email, false)?;
            header_safe("name", &display_name, true)?;
            for g in &groups {
                header_safe("group", g, false)?;
            }
            if store.get_user(&username).await?.is_some() {
                return Err(Error::Invalid(format!("user {username} already exists")));
            }
            // Whatever an earlier account of this name left (a deletion cut short by a
            // crash) goes first: a new account inherits no factor and no session.
            store.delete_user(&username).await?;
            store
                .put_user(&User {
                    username: username.clone(),
                    display_name,
                    email,
                    groups,
                    password_hash,
                    disabled: false,
                    last_method: None,
                    created_at: now(),
                    // Random, so no session left from an earlier account of the same name
                    // can ever match it.
                    session_generation: rand::random::<u64>() >> 1,
                    trust_generation: rand::random::<u64>() >> 1,
                })
                .await?;
            audit!("user_added", user = username, by = "cli");
            Ok(format!("user {username} added"))
        }
        Command::UserPasswd {
            username,
            password_hash,
        } => {
            let (user, _, ended) = end_sessions(store, &username.to_lowercase(), None, &mut |u| {
                u.password_hash = password_hash.clone();
                u.trust_generation += 1;
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {username}")))?;
            audit!(
                "password_changed",
                user = user.username,
                by = "cli",
                sessions_ended = ended
            );
            Ok(format!(
                "password of {} changed; {ended} session(s) ended",
                user.username
            ))
        }
        Command::UserList => {
            let mut out = String::from("USERNAME\tSTATUS\tNAME\tEMAIL\tGROUPS\n");
            for u in store.list_users().await? {
                let status = if u.disabled { "disabled" } else { "active" };
                out.push_str(&format!(
                    "{}\t{status}\t{}\t{}\t{}\n",
                    u.username,
                    u.display_name,
                    u.email,
                    u.groups.join(",")
                ));
            }
            Ok(out.trim_end().to_string())
        }
        Command::UserSetDisabled { username, disabled } => {
            let (user, ended) = if disabled {
                end_sessions(store, &username.to_lowercase(), None, &mut |u| {
                    u.disabled = true
                })
                .await?
                .map(|(user, _, ended)| (user, ended))
            } else {
                store
                    .update_user(&username.to_lowercase(), &mut |u| u.disabled = false)
                    .await?
                    .map(|user| (user, 0))
            }
            .ok_or_else(|| Error::NotFound(format!("user {username}")))?;
            let word = if disabled { "disabled" } else { "enabled" };
            audit!(format!("user_{word}"), user = user.username, by = "cli");
            Ok(format!(
                "user {} {word}{}",
                user.username,
                if disabled {
                    format!("; {ended} session(s) ended")
                } else {
                    String::new()
                }
            ))
        }
        Command::UserDelete { username } => {
            let username = username.to_lowercase();
            if !store.delete_user(&username).await? {
                return Err(Error::NotFound(format!("user {username}")));
            }
            // A later account of the same name inherits nothing of this one's devices
            // or activity.
            crate::auth::devices::forget_user(store, &username).await?;
            crate::activity::forget_user(store, &username).await?;
            audit!("user_deleted", user = username, by = "cli");
            Ok(format!("user {username} deleted"))
        }
        Command::UserShow { username } => {
            let user = store
                .get_user(&username.to_lowercase())
                .await?
                .ok_or_else(|| Error::NotFound(format!("user {username}")))?;
            let factors: Vec<&str> = crate::mfa::enabled_factors(store, &user.username)
                .await?
                .iter()
                .map(|f| f.id())
                .collect();
            let sessions = store.sessions_of(&user.username).await?.len();
            let devices: Vec<String> = crate::mfa::webauthn::devices(store, &user.username)
                .await?
                .iter()
                .map(|d| {
                    format!(
                        "{} (added {}{})",
                        d.name,
                        format_time(d.added_at),
                        if d.passwordless { ", passwordless" } else { "" }
                    )
                })
                .collect();
            let telegram: Vec<String> = crate::mfa::telegram::accounts(store, &user.username)
                .await?
                .iter()
                .map(|a| {
                    format!(
                        "{} (id {}, linked {})",
                        a.label(),
                        a.telegram_id,
                        format_time(a.linked_at)
                    )
                })
                .collect();
            Ok(format!(
                "username: {}\nname: {}\nemail: {}\ngroups: {}\nstatus: {}\ncreated: {}\nsecond factors: {}\npasskeys: {}\ntelegram: {}\nbackup codes left: {}\nsessions: {sessions}",
                user.username,
                user.display_name,
                user.email,
                user.groups.join(","),
                if user.disabled { "disabled" } else { "active" },
                format_time(user.created_at),
                if factors.is_empty() { "none".to_string() } else { factors.join(", ") },
                if devices.is_empty() { "none".to_string() } else { devices.join("; ") },
                if telegram.is_empty() { "none".to_string() } else { telegram.join("; ") },
                crate::mfa::backup::remaining(store, &user.username).await?,
            ))
        }
        Command::UserReset2fa { username } => {
            let username = username.to_lowercase();
            if store.get_user(&username).await?.is_none() {
                return Err(Error::NotFound(format!("user {username}")));
            }
            crate::mfa::reset(store, &username, "cli").await?;
            Ok(format!("every second factor of {username} is off and the backup codes are deleted; they sign in with the password alone until they turn 2FA on again"))
        }
        Command::SessionsList { username } => {
            let sessions = match username {
                Some(u) => store.sessions_of(&u.to_lowercase()).await?,
                None => store.all_sessions().await?,
            };
            let mut out = String::from("ID\tUSER\tIP\tCREATED\tLAST SEEN\tUSER AGENT\n");
            for s in sessions {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    s.id,
                    s.username,
                    s.ip,
                    format_time(s.created_at),
                    format_time(s.last_seen),
                    s.user_agent
                ));
            }
            Ok(out.trim_end().to_string())
        }
        Command::SessionsRevoke { id, username } => match (id, username) {
            (Some(id), None) => {
                if !store.delete_session(&id).await? {
                    return Err(Error::NotFound(format!(
                        "session {id} (it may have ended already: expired, revoked, or ended by a password change or a disable)"
                    )));
                }
                audit!("session_revoked", session = id, by = "cli");
                Ok(format!("session {id} revoked"))
            }
            (None, Some(username)) => {
                let username = username.to_lowercase();
                // Records of a user that no longer exists are removed all the same.
                let n = match end_sessions(store, &username, None, &mut |_| {}).await? {
                    Some((_, _, ended)) => ended,
                    None => store.delete_sessions_of(&username, None).await?,
                };
                audit!("sessions_revoked", user = username, count = n, by = "cli");
                Ok(format!("{n} session(s) of {username} revoked"))
            }
            _ => Err(Error::Invalid("give a session id or --user NAME".into())),
        },
    }
}

/// How long the CLI waits for a running server's answer.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends a command to a running server; `None` when no server listens. A server that
/// accepts but does not answer in time (stopped, hung) is an error, not a wait forever.
pub fn send(data_dir: &Path, command: &Command) -> Option<Result<String>> {
    let path = socket_path(data_dir);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).ok()?;
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let result = (|| {
        stream.set_read_timeout(Some(ANSWER_WITHIN))?;
        stream.set_write_timeout(Some(ANSWER_WITHIN))?;
        let mut line = serde_json::to_string(command)?;
        line.push('\n');
        let check = "check with `gatehouse user list` or `gatehouse sessions list`";
        let closed = || {
            Error::Invalid(format!(
                "the server closed its admin socket {} without answering (did it stop?): the change may or may not have been made; {check}",
                path.display()
            ))
        };
        let hung = |sent: &str| {
            Error::Invalid(format!(
                "the server's admin socket {} did not answer within {} s: is `gatehouse serve` stopped or hung? {sent}; {check}",
                path.display(),
                ANSWER_WITHIN.as_secs()
            ))
        };
        match stream.write_all(line.as_bytes()) {
            Err(e) if timed_out(&e) => {
                return Err(hung(
                    "The command may be partly sent: a server that resumes will not carry out half of one",
                ))
            }
            Err(_) => return Err(closed()),
            Ok(()) => {}
        }
        let mut reply = String::new();
        let read = BufReader::new(&stream).read_line(&mut reply);
        if matches!(&read, Err(e) if timed_out(e)) {
            return Err(hung(
                "The command was sent: a server that resumes may still carry it out",
            ));
        }
        // A reply cut short (no end of line) is a server that died while answering.
        if read.is_err() || !reply.ends_with('\n') || reply.trim().is_empty() {
            return Err(closed());
        }
        let reply: Reply = serde_json::from_str(&reply)?;
        if reply.ok {
            Ok(reply.output)
        } else {
            Err(Error::Invalid(reply.output))
        }
    })();
    Some(result)
}

/// Serves the admin socket until `shutdown` fires.
pub async fn serve(
    store: std::sync::Arc<dyn Store>,
    data_dir: PathBuf,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let path = socket_path(&data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot open the admin socket; CLI commands need the server stopped");
            return;
        }
    };
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut line = String::new();
                    if tokio::io::BufReader::new(read).read_line(&mut line).await.is_err() {
                        return;
                    }
                    let reply = match serde_json::from_str::<Command>(&line) {
                        Ok(command) => match execute(store.as_ref(), command).await {
                            Ok(output) => Reply { ok: true, output },
                            Err(e) => Reply { ok: false, output: e.to_string() },
                        },
                        Err(e) => Reply { ok: false, output: format!("bad admin request: {e}") },
                    };
                    let mut text = serde_json::to_string(&reply).unwrap_or_default();
                    text.push('\n');
                    let _ = write.write_all(text.as_bytes()).await;
                });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_that_closes_the_socket_without_answering_is_not_called_store_damage() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            drop(stream);
        });
        let err = send(dir.path(), &Command::UserList)
            .expect("the socket answered the connect")
            .unwrap_err()
            .to_string();
        server.join().unwrap();
        assert!(
            err.contains("without answering") && err.contains("may or may not"),
            "{err}"
        );
        assert!(!err.contains("corrupt"), "{err}");
    }

    use super::*;

    async fn add(store: &dyn Store, name: &str) -> Result<String> {
        execute(
            store,
            Command::UserAdd {
                username: name.into(),
                email: "a@example.com".into(),
                display_name: "A".into(),
                groups: vec!["g".into()],
                password_hash: "x".into(),
            },
        )
        .await
    }

    #[test]
    fn user_names_are_normalised_and_checked() {
        assert_eq!(valid_username(" Ann ").unwrap(), "ann");
        assert!(valid_username("a b").is_err());
        assert!(valid_username("").is_err());
        assert!(valid_username("ann\r\nRemote-User: admin").is_err());
    }

    #[tokio::test]
    async fn duplicate_user_is_refused() {
        let store = crate::store::MemoryEngine::store();
        add(&store, "ann").await.unwrap();
        assert!(add(&store, "ANN")
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists"));
    }

    #[tokio::test]
    async fn header_breaking_values_are_refused() {
        let store = crate::store::MemoryEngine::store();
        let bad = Command::UserAdd {
            username: "bob".into(),
            email: "x\r\nX: y".into(),
            display_name: String::new(),
            groups: vec![],
            password_hash: "x".into(),
        };
        assert!(execute(&store, bad).await.is_err());
        let bad = Command::UserAdd {
            username: "bob".into(),
            email: String::new(),
            display_name: String::new(),
            groups: vec!["a,b".into()],
            password_hash: "x".into(),
        };
        assert!(execute(&store, bad).await.is_err());
    }
}
