//! Glance's `os_hash_value`: a SHA-256 of the image data, computed while it streams in.
//!
//! Glance's algorithm is configurable (`hashing_algorithm`, SHA-512 by default) and its
//! clients verify with whichever `os_hash_algo` names. nefos uses SHA-256: the CPUs nefos
//! runs on hash it in hardware (SHA-NI) at twice SHA-512's speed in software, and an
//! image upload should cost little more than the object upload it is (`image-bench`).
//!
//! The object store already hashes every block (SHA-256) and the whole (MD5) as the body
//! arrives; this hash runs beside them in short tasks on the blocking pool, one batch of
//! chunks (cheap `Bytes` clones) at a time, each batch chained after the previous one, so
//! an upload costs no extra pass over the data, the reactor never hashes, and no upload
//! holds a blocking thread while it waits for its client.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// The `hashing_algorithm` nefos uses.
pub(crate) const OS_HASH_ALGO: &str = "sha256";

/// Bytes gathered before a batch is handed to the blocking pool.
const BATCH_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
struct HashState {
    /// The hasher, when no batch is being hashed.
    idle: Option<Sha256>,
    /// The batch being hashed; it gives the hasher back.
    running: Option<JoinHandle<Sha256>>,
    batch: Vec<Bytes>,
    batched: usize,
    /// A hashing task failed: the digest is lost, the upload is not.
    failed: bool,
}

impl HashState {
    /// The hasher, once the running batch (if any) is done.
    async fn hasher(&mut self) -> Option<Sha256> {
        if let Some(running) = self.running.take() {
            match running.await {
                Ok(hasher) => self.idle = Some(hasher),
                Err(_) => self.failed = true,
            }
        }
        if self.failed {
            return None;
        }
        self.idle.take()
    }

    /// Hands the gathered chunks to the blocking pool.
    async fn flush(&mut self) {
        let Some(mut hasher) = self.hasher().await else {
            self.batch.clear();
            self.batched = 0;
            return;
        };
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.running = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                hasher.update(chunk);
            }
            hasher
        }));
    }
}

/// Hashes what passes through [`HashTap::tap`]; [`HashTap::finish`] gives the digest.
#[derive(Debug, Clone)]
pub(crate) struct HashTap {
    state: Arc<Mutex<HashState>>,
}

impl HashTap {
    pub(crate) fn new() -> Self {
        HashTap {
            state: Arc::new(Mutex::new(HashState {
                idle: Some(Sha256::new()),
                ..HashState::default()
            })),
        }
    }

    /// `body`, with every chunk also hashed.
    pub(crate) fn tap<S, E>(
        &self,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, E>> + Send + use<S, E>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Send,
    {
        let state = Arc::clone(&self.state);
        body.then(move |chunk| {
            let state = Arc::clone(&state);
            async move {
                if let Ok(bytes) = &chunk {
                    let mut state = state.lock().await;
                    state.batched += bytes.len();
                    state.batch.push(bytes.clone());
                    if state.batched >= BATCH_BYTES {
                        state.flush().await;
                    }
                }
                chunk
            }
        })
    }

    /// The hex digest of everything tapped; `None` if hashing failed.
    pub(crate) async fn finish(self) -> Option<String> {
        let mut state = self.state.lock().await;
        state.flush().await;
        let hasher = state.hasher().await?;
        Some(hex::encode(hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digest_covers_every_chunk_in_order() {
        let tap = HashTap::new();
        // Small chunks and chunks larger than a batch, so that batches chain.
        let big = Bytes::from(vec![7u8; BATCH_BYTES + 3]);
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(big.clone()),
            Ok(Bytes::from_static(b"c")),
            Ok(big.clone()),
        ];
        let seen: Vec<_> = tap.tap(futures::stream::iter(chunks)).collect().await;
        assert_eq!(seen.len(), 4);
        let mut all = b"ab".to_vec();
        all.extend_from_slice(&big);
        all.push(b'c');
        all.extend_from_slice(&big);
        let expected = hex::encode(Sha256::digest(&all));
        assert_eq!(tap.finish().await.as_deref(), Some(expected.as_str()));
    }
}
