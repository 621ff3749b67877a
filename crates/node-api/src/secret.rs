use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The shared secret that control plane and nodes present to each other as
/// `Authorization: Bearer <secret>`.
#[derive(Clone)]
pub struct ClusterSecret {
    value: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(…)")
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read the cluster secret from {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the cluster secret to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the cluster secret in {path} is shorter than {MIN_SECRET_LEN} characters")]
    TooShort { path: PathBuf },
}

/// Secrets shorter than this are refused: they could be guessed.
pub const MIN_SECRET_LEN: usize = 16;

impl ClusterSecret {
    pub fn new(value: impl Into<String>) -> ClusterSecret {
        let value = value.into();
        let digest = Sha256::digest(value.as_bytes()).into();
        ClusterSecret { value, digest }
    }

    /// 256 random bits, base64url.
    pub fn generate() -> ClusterSecret {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ClusterSecret::new(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a secret file (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<ClusterSecret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        let value = text.trim();
        if value.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort {
                path: path.to_owned(),
            });
        }
        Ok(ClusterSecret::new(value))
    }

    /// Reads the secret at `path`, or creates it there (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<ClusterSecret, SecretError> {
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let secret = Self::generate();
                let write = |path: &Path| -> io::Result<()> {
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)?;
                    file.write_all(secret.value.as_bytes())?;
                    file.write_all(b"\n")?;
                    file.sync_all()
                };
                match write(path) {
                    Ok(()) => Ok(secret),
                    // Another process created it first: use theirs.
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
                    Err(source) => Err(SecretError::Write {
                        path: path.to_owned(),
                        source,
                    }),
                }
            }
            Err(source) => Err(SecretError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The `Authorization` header value that carries this secret.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value)
    }

    /// Whether an `Authorization` header value carries this secret. Compares digests, so
    /// the time taken says nothing about how much of a guess was right.
    pub fn verify_bearer(&self, header: &str) -> bool {
        let Some(presented) = header.strip_prefix("Bearer ") else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        presented
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_round_trips_and_rejects_others() {
        let secret = ClusterSecret::generate();
        assert!(secret.verify_bearer(&secret.bearer()));
        assert!(!secret.verify_bearer("Bearer wrong-secret-value"));
        assert!(!secret.verify_bearer(&secret.bearer().replace("Bearer ", "Basic ")));
        assert!(!ClusterSecret::generate().verify_bearer(&secret.bearer()));
    }

    #[test]
    fn load_or_create_keeps_the_first_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster-secret");
        let first = ClusterSecret::load_or_create(&path).unwrap();
        let again = ClusterSecret::load_or_create(&path).unwrap();
        assert!(again.verify_bearer(&first.bearer()));
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            ClusterSecret::load(&path),
            Err(SecretError::TooShort { .. })
        ));
    }
}
