//! argon2id password hashing on a few dedicated threads.
//!
//! A hash takes tens of milliseconds and 19 MiB of memory. Run on the blocking pool without
//! bound, a flood of failed logins started one hash per request at once: hundreds of
//! threads, each leaving its 19 MiB with the allocator, gigabytes that never came back, and
//! valid logins queued behind them for seconds. Here one worker per core hashes with memory
//! it allocated once and keeps, so hashing never holds more than `workers × 19 MiB` and a
//! burst costs no allocation at all. Requests wait their turn in a short queue; when it is
//! full for longer than [`QUEUE_WAIT`], they are turned away with [`IdentityError::Busy`]
//! (HTTP 429 with `Retry-After`) instead of piling up.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};

use crate::IdentityError;

/// Longer passwords are refused rather than hashed, so a request cannot buy CPU time.
pub(crate) const MAX_PASSWORD_BYTES: usize = 4096;

/// Hashes waiting per worker beyond the one it runs.
const QUEUE_PER_WORKER: usize = 4;

/// How long a request may wait for room in the queue before it is turned away.
pub(crate) const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// What a turned-away client is told to wait.
pub(crate) const BUSY_RETRY_AFTER_SECS: u64 = 1;

pub(crate) fn check_password_input(password: &str) -> Result<(), IdentityError> {
    if password.is_empty() {
        return Err(IdentityError::invalid("password", "must not be empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(IdentityError::invalid(
            "password",
            format!("longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Work for a hashing thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads and their queue. Dropping it ends the threads once the queue is
/// drained.
#[derive(Debug)]
pub(crate) struct PasswordHashers {
    jobs: SyncSender<Job>,
    /// Admission to the queue: workers plus waiting places. A place is held until its job
    /// has run, so the channel always has room for an admitted job.
    places: Arc<Semaphore>,
    queue_wait: Duration,
    /// Hashing threads that started; with none, hashing fails instead of waiting forever.
    workers: usize,
}

impl PasswordHashers {
    /// One hashing thread per core.
    pub(crate) fn new() -> PasswordHashers {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        PasswordHashers::with_workers(workers, QUEUE_WAIT)
    }

    pub(crate) fn with_workers(workers: usize, queue_wait: Duration) -> PasswordHashers {
        let workers = workers.max(1);
        let places = workers * (1 + QUEUE_PER_WORKER);
        let (jobs, queue) = sync_channel::<Job>(places);
        let queue = Arc::new(Mutex::new(queue));
        let mut started = 0;
        for index in 0..workers {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("nefos-argon2-{index}"))
                .spawn(move || work(&queue));
            match spawned {
                Ok(_) => started += 1,
                Err(error) => tracing::error!(%error, "cannot start a password hashing thread"),
            }
        }
        PasswordHashers {
            jobs,
            places: Arc::new(Semaphore::new(places)),
            queue_wait,
            workers: started,
        }
    }

    /// Runs `job` on a hashing thread.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        if self.workers == 0 {
            return Err(IdentityError::PasswordHash {
                reason: "no password hashing thread could be started".to_owned(),
            });
        }
        let busy = IdentityError::Busy {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
        };
        let acquire = Arc::clone(&self.places).acquire_owned();
        let place = match tokio::time::timeout(self.queue_wait, acquire).await {
            Ok(Ok(place)) => place,
            Ok(Err(_)) | Err(_) => return Err(busy),
        };
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(job(memory));
            // Released when the job has run, even if its caller has gone away.
            drop(place);
        });
        // Never blocks: the channel holds as many jobs as there are places, and a place is
        // freed only after its job has left the channel.
        self.jobs.try_send(job).map_err(|_| IdentityError::Busy {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
        })?;
        answer.await.map_err(|_| IdentityError::PasswordHash {
            reason: "the hashing thread stopped".to_owned(),
        })
    }

    /// Hashes `password` into a PHC string (argon2id, default cost).
    pub(crate) async fn hash(&self, password: String) -> Result<String, IdentityError> {
        check_password_input(&password)?;
        let salt = SaltString::generate(&mut OsRng);
        self.run(move |memory| hash_with(memory, &password, &salt))
            .await?
    }

    /// Checks `password` against a stored hash. With no stored hash it still spends the
    /// time of one hash, so response times do not reveal which user names exist.
    pub(crate) async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, IdentityError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.run(
            move |memory| match stored.as_deref().map(PasswordHash::new) {
                Some(Ok(hash)) => verify_with(memory, &password, &hash),
                _ => {
                    let salt = SaltString::generate(&mut OsRng);
                    let _ = hash_with(memory, &password, &salt);
                    false
                }
            },
        )
        .await
    }
}

/// A hashing thread: takes jobs until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only to take one job; a poisoned lock means another worker
        // panicked while holding it, which `recv` cannot cause, so carry on.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

/// Runs argon2 in `memory`, growing it once to what `argon` needs.
fn argon2_into(
    memory: &mut Vec<Block>,
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = argon.params().block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    argon.hash_password_into_with_memory(password, salt, out, &mut memory[..needed])
}

fn hash_with(
    memory: &mut Vec<Block>,
    password: &str,
    salt: &SaltString,
) -> Result<String, IdentityError> {
    let failed = |reason: String| IdentityError::PasswordHash { reason };
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| failed(e.to_string()))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(memory, &argon, password.as_bytes(), salt_bytes, &mut out)
        .map_err(|e| failed(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(e.to_string()))?),
    };
    Ok(phc.to_string())
}

fn verify_with(memory: &mut Vec<Block>, password: &str, stored: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(memory, &argon, password.as_bytes(), salt_bytes, &mut out).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[tokio::test]
    async fn hash_verifies_only_its_password() {
        let hashers = PasswordHashers::with_workers(2, QUEUE_WAIT);
        let hash = hashers.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert!(
            hashers
                .verify(Some(hash.clone()), "correct horse".into())
                .await
                .unwrap()
        );
        assert!(
            !hashers
                .verify(Some(hash), "battery staple".into())
                .await
                .unwrap()
        );
        assert!(!hashers.verify(None, "anything".into()).await.unwrap());
        assert!(
            !hashers
                .verify(Some("not a hash".into()), "anything".into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_of_the_argon2_crate_verify_and_the_other_way() {
        let hashers = PasswordHashers::with_workers(1, QUEUE_WAIT);
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        assert!(hashers.verify(Some(theirs), "s3cret".into()).await.unwrap());
        let ours = hashers.hash("s3cret".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        use argon2::PasswordVerifier;
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn empty_and_huge_passwords_are_refused() {
        let hashers = PasswordHashers::with_workers(1, QUEUE_WAIT);
        assert!(hashers.hash(String::new()).await.is_err());
        assert!(
            hashers
                .hash("x".repeat(MAX_PASSWORD_BYTES + 1))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_full_queue_turns_requests_away_instead_of_growing() {
        let hashers = Arc::new(PasswordHashers::with_workers(1, Duration::from_millis(10)));
        // One running and four waiting fill the queue; more than that get Busy within
        // the queue wait rather than a thread and 19 MiB each.
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let hashers = Arc::clone(&hashers);
                tokio::spawn(async move { hashers.verify(None, "wrong".into()).await })
            })
            .collect();
        let mut busy = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(verified) => assert!(!verified),
                Err(IdentityError::Busy { retry_after_secs }) => {
                    assert_eq!(retry_after_secs, BUSY_RETRY_AFTER_SECS);
                    busy += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(busy > 0, "forty hashes at once on one thread must overflow");
    }
}
