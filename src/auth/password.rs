//! argon2id password hashing on a small pool of dedicated low-priority threads.
//!
//! Why a pool of its own: a login flood must slow logins, not the forward-auth check.
//! The hashing threads run at the lowest normal priority (SCHED_BATCH, nice 19), so
//! under load the request workers always win the CPU. There are few of them
//! (`password.hashing_threads`, default one fewer than the cores), which also bounds
//! memory: each keeps one 19 MiB argon2 buffer in its allocator arena, instead of one
//! per blocking-pool thread. The queue is bounded; when it is full the caller is told
//! the service is busy rather than waiting without limit.
//!
//! An unknown or disabled user is checked against a dummy hash made with the same
//! parameters, so both cases take the same time as a wrong password.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::oneshot;

use crate::config::PasswordParams;
use crate::error::{Error, Result};

/// Jobs that may wait for a hashing thread before new ones are refused.
const QUEUE: usize = 64;

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String>>,
    },
    Verify {
        password: String,
        hash: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    dummy_hash: Arc<str>,
    queue: SyncSender<Job>,
}

fn lower_this_threads_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    {
        tracing::warn!(error = ?e, "could not lower the priority of a password hashing thread");
    }
}

impl Passwords {
    /// Builds the hasher and starts its threads; the dummy hash costs one hash.
    pub fn new(params: &PasswordParams) -> Result<Self> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| Error::config("password", format!("{params:?}"), e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let dummy_hash: Arc<str> = argon
            .hash_password(crate::basics::random_token(16).as_bytes())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))?
            .to_string()
            .into();
        let (queue, jobs) = sync_channel::<Job>(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let threads = if params.hashing_threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .saturating_sub(1)
                .max(1)
        } else {
            params.hashing_threads
        };
        let this = Passwords {
            argon,
            dummy_hash,
            queue,
        };
        for i in 0..threads {
            let worker = this.clone();
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker.serve(&jobs))?;
        }
        Ok(this)
    }

    fn serve(&self, jobs: &Mutex<Receiver<Job>>) {
        lower_this_threads_priority();
        loop {
            let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            match job {
                Job::Hash { password, reply } => {
                    let _ = reply.send(self.hash_now(&password));
                }
                Job::Verify {
                    password,
                    hash,
                    reply,
                } => {
                    let _ = reply.send(self.verify_now(&password, hash.as_deref()));
                }
            }
        }
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Error::Busy,
            TrySendError::Disconnected(_) => {
                Error::Internal("password hashing threads stopped".into())
            }
        })
    }

    /// Hashes synchronously on the calling thread (CLI use).
    pub fn hash_now(&self, password: &str) -> Result<String> {
        self.argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))
    }

    /// Hashes on the hashing threads.
    pub async fn hash(&self, password: String) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer
            .await
            .map_err(|_| Error::Internal("password hashing thread lost a job".into()))?
    }

    /// Verifies on the hashing threads; `None` (no such user) checks the dummy hash and
    /// fails. `Err(Error::Busy)` when too many checks are already waiting.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify {
            password,
            hash,
            reply,
        })?;
        answer
            .await
            .map_err(|_| Error::Internal("password hashing thread lost a job".into()))
    }

    /// Verifies synchronously.
    pub fn verify_now(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy_hash);
        let ok = match PasswordHash::new(hash) {
            Ok(parsed) => self
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => {
                tracing::error!("a stored password hash cannot be parsed");
                false
            }
        };
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Passwords {
        Passwords::new(&PasswordParams {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
            min_length: 8,
            hashing_threads: 1,
        })
        .unwrap()
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let p = fast();
        let h = p.hash_now("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(p.verify_now("correct horse", Some(&h)));
        assert!(!p.verify_now("wrong horse", Some(&h)));
    }

    #[test]
    fn unknown_user_never_verifies() {
        let p = fast();
        assert!(!p.verify_now("anything", None));
    }

    #[tokio::test]
    async fn pool_hashes_and_verifies_off_the_caller() {
        let p = fast();
        let h = p.hash("pool secret".into()).await.unwrap();
        assert!(p
            .verify("pool secret".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!p.verify("other".into(), Some(h)).await.unwrap());
        assert!(!p.verify("other".into(), None).await.unwrap());
    }
}
