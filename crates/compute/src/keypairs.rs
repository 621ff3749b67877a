//! Keypairs: a user's SSH public keys, by name, that servers get through their config
//! drive. Keys are imported, or (Nova before 2.92) generated: an Ed25519 key whose
//! private half is in the answer to the request that made it and kept nowhere.

use base64::Engine;
use md5::{Digest, Md5};
use nefos_db::DbError;
use nefos_db::compute::{self as q, KeypairRow};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use crate::{Compute, ComputeError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keypair {
    pub name: String,
    pub user_id: String,
    pub key_type: String,
    pub public_key: String,
    pub fingerprint: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// The SSH key types nefos accepts.
const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Nova's fingerprint of an OpenSSH public key line: the MD5 of the key's blob, in
/// colon-separated hex. The blob must name the same type as the line.
pub fn fingerprint(public_key: &str) -> Result<String, ComputeError> {
    let invalid =
        || ComputeError::invalid("Keypair data is invalid: failed to generate fingerprint");
    let mut fields = public_key.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err(invalid());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(invalid());
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| invalid())?;
    let named = blob
        .get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .map(|len| u32::from_be_bytes(len) as usize)
        .and_then(|len| blob.get(4..4 + len));
    if named != Some(kind.as_bytes()) {
        return Err(invalid());
    }
    let digest = Md5::digest(&blob);
    Ok(digest
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn check_name(name: &str) -> Result<(), ComputeError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_- @.".contains(c))
        && !name.trim().is_empty();
    if ok {
        Ok(())
    } else {
        Err(ComputeError::invalid(
            "Keypair data is invalid: Keypair name contains unsafe characters",
        ))
    }
}

fn check_type(key_type: Option<&str>) -> Result<(), ComputeError> {
    match key_type.unwrap_or("ssh") {
        "ssh" => Ok(()),
        other => Err(ComputeError::invalid(format!(
            "Keypair data is invalid: only ssh keys are supported, not {other}"
        ))),
    }
}

/// A fresh Ed25519 key: its `authorized_keys` line and its private key file.
fn new_ed25519() -> Result<(String, String), ComputeError> {
    let failed = ComputeError::KeyGeneration;
    let mut private =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(failed)?;
    private.set_comment("Generated-by-nefos");
    let public = private.public_key().to_openssh().map_err(failed)?;
    let private = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(failed)?
        .to_string();
    Ok((public, private))
}

fn keypair_of(row: KeypairRow) -> Keypair {
    Keypair {
        name: row.name,
        user_id: row.user_id,
        key_type: row.key_type,
        public_key: row.public_key,
        fingerprint: row.fingerprint,
        created_at: row.created_at,
    }
}

fn no_keypair(name: &str, user: &str) -> ComputeError {
    ComputeError::not_found(format!("Keypair {name} not found for user {user}"))
}

/// Whose keypairs a call acts on: the caller's, or (administrators) another user's.
fn owner<'a>(caller: &'a AuthContext, user: Option<&'a str>) -> Result<&'a str, ComputeError> {
    match user {
        Some(user) if user != caller.user_id && !caller.is_cloud_admin() => {
            Err(ComputeError::forbidden(
                "Policy doesn't allow os_compute_api:os-keypairs:index to be performed.",
            ))
        }
        Some(user) => Ok(user),
        None => Ok(&caller.user_id),
    }
}

impl Compute {
    pub async fn import_keypair(
        &self,
        caller: &AuthContext,
        user: Option<&str>,
        name: &str,
        key_type: Option<&str>,
        public_key: &str,
    ) -> Result<Keypair, ComputeError> {
        let user = owner(caller, user)?;
        check_name(name)?;
        check_type(key_type)?;
        self.store_keypair(user, name, public_key.trim()).await
    }

    /// Makes a new Ed25519 keypair, stores its public half and returns it with the
    /// private half in OpenSSH's format.
    pub async fn generate_keypair(
        &self,
        caller: &AuthContext,
        user: Option<&str>,
        name: &str,
        key_type: Option<&str>,
    ) -> Result<(Keypair, String), ComputeError> {
        let user = owner(caller, user)?;
        check_name(name)?;
        check_type(key_type)?;
        let (public_key, private_key) = new_ed25519()?;
        let keypair = self.store_keypair(user, name, &public_key).await?;
        Ok((keypair, private_key))
    }

    async fn store_keypair(
        &self,
        user: &str,
        name: &str,
        public_key: &str,
    ) -> Result<Keypair, ComputeError> {
        let key_type = "ssh";
        let row = KeypairRow {
            user_id: user.to_owned(),
            name: name.to_owned(),
            key_type: key_type.to_owned(),
            public_key: public_key.to_owned(),
            fingerprint: fingerprint(public_key)?,
            created_at: now_micros(),
        };
        match q::insert_keypair(self.db().pool(), &row).await {
            Ok(()) => Ok(keypair_of(row)),
            Err(DbError::Conflict { .. }) => Err(ComputeError::conflict(format!(
                "Key pair '{name}' already exists."
            ))),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn list_keypairs(
        &self,
        caller: &AuthContext,
        user: Option<&str>,
    ) -> Result<Vec<Keypair>, ComputeError> {
        let user = owner(caller, user)?;
        Ok(q::list_keypairs(self.db().pool(), user)
            .await?
            .into_iter()
            .map(keypair_of)
            .collect())
    }

    pub async fn keypair(
        &self,
        caller: &AuthContext,
        user: Option<&str>,
        name: &str,
    ) -> Result<Keypair, ComputeError> {
        let user = owner(caller, user)?;
        q::get_keypair(self.db().pool(), user, name)
            .await?
            .map(keypair_of)
            .ok_or_else(|| no_keypair(name, user))
    }

    pub async fn delete_keypair(
        &self,
        caller: &AuthContext,
        user: Option<&str>,
        name: &str,
    ) -> Result<(), ComputeError> {
        let user = owner(caller, user)?;
        if q::delete_keypair(self.db().pool(), user, name).await? {
            Ok(())
        } else {
            Err(no_keypair(name, user))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_md5_of_the_key_blob() {
        // The blob of an ed25519 key: its type, then 32 bytes of key.
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[7; 32]);
        let line = format!(
            "ssh-ed25519 {} me@host",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        let expected: Vec<String> = Md5::digest(&blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fingerprint(&line).unwrap(), expected.join(":"));
        assert!(fingerprint("ssh-rsa AAAA").is_err());
        assert!(fingerprint(&line.replace("ssh-ed25519 ", "ssh-rsa ")).is_err());
        assert!(fingerprint("not a key").is_err());
    }
}
