//! argon2id password hashing, run off the async reactor (a hash takes tens of milliseconds).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::IdentityError;

/// Longer passwords are refused rather than hashed, so a request cannot buy CPU time.
pub(crate) const MAX_PASSWORD_BYTES: usize = 4096;

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

/// Hashes `password` into a PHC string (argon2id, default cost).
pub(crate) async fn hash_password(password: String) -> Result<String, IdentityError> {
    check_password_input(&password)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| IdentityError::PasswordHash {
                reason: e.to_string(),
            })
    })
    .await
    .map_err(IdentityError::Task)?
}

/// Checks `password` against a stored hash. With no stored hash it still spends the time of
/// one verification, so response times do not reveal which user names exist.
pub(crate) async fn verify_password(
    stored: Option<String>,
    password: String,
) -> Result<bool, IdentityError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    tokio::task::spawn_blocking(move || {
        let argon = Argon2::default();
        match stored.as_deref().map(PasswordHash::new) {
            Some(Ok(hash)) => argon.verify_password(password.as_bytes(), &hash).is_ok(),
            _ => {
                let salt = SaltString::generate(&mut OsRng);
                let _ = argon.hash_password(password.as_bytes(), &salt);
                false
            }
        }
    })
    .await
    .map_err(IdentityError::Task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_only_its_password() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password(Some(hash.clone()), "correct horse".into())
                .await
                .unwrap()
        );
        assert!(
            !verify_password(Some(hash), "battery staple".into())
                .await
                .unwrap()
        );
        assert!(!verify_password(None, "anything".into()).await.unwrap());
    }

    #[tokio::test]
    async fn empty_and_huge_passwords_are_refused() {
        assert!(hash_password(String::new()).await.is_err());
        assert!(
            hash_password("x".repeat(MAX_PASSWORD_BYTES + 1))
                .await
                .is_err()
        );
    }
}
