//! Glance's `os_hash_value`: a SHA-512 of the image data, computed while it streams in.
//!
//! The object store already hashes every block (SHA-256) and the whole (MD5) as the body
//! arrives; SHA-512 runs beside them on a blocking thread of its own, fed the same chunks
//! (cheap `Bytes` clones) through a short queue, so an upload costs no extra pass over the
//! data and the reactor never hashes.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha512};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Glance's default `hashing_algorithm`.
pub(crate) const OS_HASH_ALGO: &str = "sha512";

/// Chunks queued for the hasher before the upload waits for it.
const QUEUED_CHUNKS: usize = 16;

/// Hashes what passes through [`HashTap::tap`]; [`HashTap::finish`] gives the digest.
#[derive(Debug)]
pub(crate) struct HashTap {
    sender: mpsc::Sender<Bytes>,
    hasher: JoinHandle<String>,
}

impl HashTap {
    pub(crate) fn new() -> Self {
        let (sender, mut receiver) = mpsc::channel::<Bytes>(QUEUED_CHUNKS);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hash = Sha512::new();
            while let Some(chunk) = receiver.blocking_recv() {
                hash.update(&chunk);
            }
            hex::encode(hash.finalize())
        });
        HashTap { sender, hasher }
    }

    /// `body`, with every chunk also sent to the hasher.
    pub(crate) fn tap<S, E>(
        &self,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, E>> + Send + use<S, E>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Send,
    {
        let sender = self.sender.clone();
        body.then(move |chunk| {
            let sender = sender.clone();
            async move {
                if let Ok(bytes) = &chunk {
                    // A closed hasher only means the digest will be missing; the upload
                    // itself goes on and `finish` reports it.
                    let _ = sender.send(bytes.clone()).await;
                }
                chunk
            }
        })
    }

    /// The hex digest of everything tapped; `None` if the hasher failed.
    pub(crate) async fn finish(self) -> Option<String> {
        let HashTap { sender, hasher } = self;
        drop(sender);
        hasher.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digest_covers_every_chunk_in_order() {
        let tap = HashTap::new();
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"c"))];
        let seen: Vec<_> = tap.tap(futures::stream::iter(chunks)).collect().await;
        assert_eq!(seen.len(), 2);
        let expected = hex::encode(Sha512::digest(b"abc"));
        assert_eq!(tap.finish().await.as_deref(), Some(expected.as_str()));
    }
}
