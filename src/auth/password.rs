//! argon2id password hashing on a small pool of dedicated low-priority threads.
//!
//! Why a pool of its own: a login flood must slow logins, not the forward-auth check.
//! The hashing threads run at the lowest normal priority (SCHED_BATCH, nice 19), so
//! under load the request workers always win the CPU. There are few of them
//! (`password.hashing_threads`, default one fewer than the cores). Each allocates its
//! argon2 working memory (19 MiB by default) once, at its first job, and reuses it:
//! argon2's own calls allocate and free it per hash, which glibc serves from the
//! thread's arena after the first few and never gives back (100 MiB after ten logins),
//! and every fresh mapping costs page faults on the request cores. The queue is
//! bounded; when it is full the caller is told the service is busy rather than waiting
//! without limit.
//!
//! An unknown or disabled user is checked against a dummy hash made with the same
//! parameters, so both cases take the same time as a wrong password.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
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

/// A hashing thread's argon2 working memory, allocated at its first job and kept.
#[derive(Default)]
struct Scratch(Vec<Block>);

impl Scratch {
    /// The first `blocks` blocks (grown for a hash made with more memory).
    fn blocks(&mut self, blocks: usize) -> &mut [Block] {
        if self.0.len() < blocks {
            self.0 = vec![Block::default(); blocks];
        }
        &mut self.0[..blocks]
    }
}

fn argon_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("argon2: {e}"))
}

/// A new PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password`.
fn hash_in(argon: &Argon2<'_>, scratch: &mut Scratch, password: &str) -> Result<String> {
    let params = argon.params();
    let mut salt = [0u8; 16];
    rand::Rng::fill(&mut rand::thread_rng(), &mut salt[..]);
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            scratch.blocks(params.block_count()),
        )
        .map_err(argon_error)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(argon_error)?,
        salt: Some(Salt::new(&salt).map_err(argon_error)?),
        hash: Some(Output::new(&out).map_err(argon_error)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `hash`, under the parameters the hash was
/// made with (constant-time comparison).
fn verify_in(scratch: &mut Scratch, password: &str, hash: &str) -> bool {
    let checked = (|| -> std::result::Result<bool, String> {
        let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
        let version =
            Version::try_from(parsed.version.unwrap_or(0x13)).map_err(|e| e.to_string())?;
        let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err("no salt or no hash".into());
        };
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                scratch.blocks(params.block_count()),
            )
            .map_err(|e| e.to_string())?;
        Ok(bool::from(out.ct_eq(expected.as_bytes())))
    })();
    checked.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a stored password hash cannot be checked");
        false
    })
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
        let dummy_hash: Arc<str> = hash_in(
            &argon,
            &mut Scratch::default(),
            &crate::basics::random_token(16),
        )?
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
        let mut scratch = Scratch::default();
        loop {
            let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            match job {
                Job::Hash { password, reply } => {
                    let _ = reply.send(hash_in(&self.argon, &mut scratch, &password));
                }
                Job::Verify {
                    password,
                    hash,
                    reply,
                } => {
                    let _ = reply.send(self.verify_with(&mut scratch, &password, hash.as_deref()));
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
        hash_in(&self.argon, &mut Scratch::default(), password)
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
        self.verify_with(&mut Scratch::default(), password, hash)
    }

    fn verify_with(&self, scratch: &mut Scratch, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let ok = verify_in(scratch, password, hash.unwrap_or(&self.dummy_hash));
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
    fn hashes_made_by_the_argon2_crate_itself_verify_and_ours_parse_there() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let p = fast();
        let theirs = p.argon.hash_password(b"their horse").unwrap().to_string();
        assert!(p.verify_now("their horse", Some(&theirs)));
        assert!(!p.verify_now("our horse", Some(&theirs)));
        // A hash made with other parameters (an older configuration) still verifies.
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(9216, 2, 1, None).unwrap(),
        )
        .hash_password(b"older horse")
        .unwrap()
        .to_string();
        assert!(p.verify_now("older horse", Some(&older)));
        let ours = p.hash_now("our horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(p.argon.verify_password(b"our horse", &parsed).is_ok());
        assert!(!p.verify_now("our horse", Some("$argon2id$v=19$garbage")));
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
