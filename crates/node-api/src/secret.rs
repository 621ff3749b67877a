use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A bearer secret: a node's token, a node's RPC key, a join token. Presented as
/// `Authorization: Bearer <secret>`; never printed by `Debug`.
#[derive(Clone)]
pub struct Secret {
    value: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        let digest = Sha256::digest(value.as_bytes()).into();
        Secret { value, digest }
    }

    /// 256 random bits, in hex: join tokens are typed on command lines, where a base64url
    /// value starting with `-` would be taken for an option.
    pub fn generate() -> Secret {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Secret::new(hex::encode(bytes))
    }

    /// The secret carried by an `Authorization` header value, if it carries one.
    pub fn from_bearer(header: &str) -> Option<Secret> {
        let value = header.strip_prefix("Bearer ")?.trim();
        (!value.is_empty()).then(|| Secret::new(value))
    }

    /// The secret itself, to hand to its holder once.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// What a database keeps instead of the secret: its SHA-256, in hex. The secrets are
    /// 256 random bits, so a fast hash is as good as a slow one against guessing.
    pub fn stored_hash(&self) -> String {
        hex::encode(self.digest)
    }

    /// The `Authorization` header value that carries this secret.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value)
    }

    /// Whether this secret is the one whose [`Secret::stored_hash`] is `stored`. Compares
    /// every byte, so the time taken says nothing about how much of a guess was right.
    pub fn has_stored_hash(&self, stored: &str) -> bool {
        let ours = self.stored_hash();
        ours.len() == stored.len()
            && ours
                .bytes()
                .zip(stored.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Whether an `Authorization` header value carries this secret. Compares digests, so
    /// the time taken says nothing about how much of a guess was right.
    pub fn verify_bearer(&self, header: &str) -> bool {
        let Some(presented) = Secret::from_bearer(header) else {
            return false;
        };
        presented
            .digest
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The control plane's own key. It never leaves the control plane (every `nefos serve`
/// process of a cloud reads the same file): from it the control plane derives each node's
/// RPC key, which the node receives once, at enrolment. A node thus knows its own RPC key
/// and no other node's.
#[derive(Clone)]
pub struct ClusterSecret {
    secret: Secret,
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

/// Names what the HMAC derives, so that the key can serve other derivations later without
/// one standing in for another.
const RPC_KEY_CONTEXT: &[u8] = b"nefos node rpc key v1";

impl ClusterSecret {
    pub fn new(value: impl Into<String>) -> ClusterSecret {
        ClusterSecret {
            secret: Secret::new(value),
        }
    }

    /// 256 random bits, in hex.
    pub fn generate() -> ClusterSecret {
        ClusterSecret {
            secret: Secret::generate(),
        }
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
                    file.write_all(secret.secret.expose().as_bytes())?;
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

    /// The key console tickets are signed with (derived, so that the key itself never
    /// signs anything a browser holds).
    pub fn console_key(&self) -> SigningKey {
        SigningKey(hmac_sha256(
            self.secret.expose().as_bytes(),
            CONSOLE_KEY_CONTEXT,
        ))
    }

    /// The key the control plane presents to node `node_id` and the node accepts:
    /// HMAC-SHA256 over the node's id and the id of its current credential. A new
    /// enrolment of the same name has a new credential id, so a revoked host's key does
    /// not open the RPC of the host enrolled under its name afterwards.
    pub fn node_rpc_key(&self, node_id: &str, credential_id: &str) -> Secret {
        let mut message = Vec::new();
        for part in [
            RPC_KEY_CONTEXT,
            node_id.as_bytes(),
            credential_id.as_bytes(),
        ] {
            // Length-prefixed, so that no two (id, credential) pairs feed the same bytes.
            message.extend_from_slice(&(part.len() as u64).to_be_bytes());
            message.extend_from_slice(part);
        }
        let mac = hmac_sha256(self.secret.expose().as_bytes(), &message);
        Secret::new(URL_SAFE_NO_PAD.encode(mac))
    }
}

impl ClusterSecret {
    /// The secret of live migration `migration` (its uuid): what its source's agent
    /// presents to its destination's. Derived, so no database holds it.
    pub fn migration_secret(&self, migration: &str) -> Secret {
        let mut message = MIGRATION_SECRET_CONTEXT.to_vec();
        message.extend_from_slice(migration.as_bytes());
        Secret::new(hex::encode(hmac_sha256(
            self.secret.expose().as_bytes(),
            &message,
        )))
    }
}

/// What migrations' secrets are derived for.
const MIGRATION_SECRET_CONTEXT: &[u8] = b"nefos live migration v1 ";

/// HMAC-SHA256 (RFC 2104): SHA-256 over the key padded to a block and XORed with the
/// outer pad, then the SHA-256 of the key XORed with the inner pad and the message.
/// What the console key is derived for.
const CONSOLE_KEY_CONTEXT: &[u8] = b"nefos console tickets v1";

/// A key that signs messages and checks signatures (HMAC-SHA256).
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

impl SigningKey {
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, message)
    }

    /// Whether `signature` is this key's of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let expected = self.sign(message);
        signature.len() == expected.len()
            && expected
                .iter()
                .zip(signature)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(padded.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(padded.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_round_trips_and_rejects_others() {
        let secret = Secret::generate();
        assert!(secret.verify_bearer(&secret.bearer()));
        assert!(!secret.verify_bearer("Bearer wrong-secret-value"));
        assert!(!secret.verify_bearer("Bearer "));
        assert!(!secret.verify_bearer(&secret.bearer().replace("Bearer ", "Basic ")));
        assert!(!Secret::generate().verify_bearer(&secret.bearer()));
        let parsed = Secret::from_bearer(&secret.bearer()).unwrap();
        assert_eq!(parsed.stored_hash(), secret.stored_hash());
        assert_eq!(secret.stored_hash().len(), 64);
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 (short key) and 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn rpc_keys_differ_by_node_credential_and_cluster() {
        let cluster = ClusterSecret::generate();
        let a = cluster.node_rpc_key("node-a", "c1");
        assert_eq!(
            a.expose(),
            cluster.node_rpc_key("node-a", "c1").expose(),
            "the control plane must derive the same key every time"
        );
        let others = [
            cluster.node_rpc_key("node-b", "c1"),
            cluster.node_rpc_key("node-a", "c2"),
            // Moving a byte from one part to the other is another key.
            cluster.node_rpc_key("node-ac", "1"),
            ClusterSecret::generate().node_rpc_key("node-a", "c1"),
        ];
        for other in others {
            assert!(!a.verify_bearer(&other.bearer()));
        }
    }

    #[test]
    fn load_or_create_keeps_the_first_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster-secret");
        let first = ClusterSecret::load_or_create(&path).unwrap();
        let again = ClusterSecret::load_or_create(&path).unwrap();
        assert_eq!(
            again.node_rpc_key("n", "c").expose(),
            first.node_rpc_key("n", "c").expose()
        );
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
