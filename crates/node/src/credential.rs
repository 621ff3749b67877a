//! The node's credential in its data directory (`credential.json`, mode 0600): received
//! once for the join token, read at every start.

use std::io;
use std::path::{Path, PathBuf};

use nefos_node_api::NodeCredential;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

/// Its name in the data directory.
pub const CREDENTIAL_FILE: &str = "credential.json";

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("cannot read the node credential {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the node credential {path} is damaged")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the node credential {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The credential at `path`, or `None` if the node has none yet.
pub async fn load(path: &Path) -> Result<Option<NodeCredential>, CredentialError> {
    let text = match tokio::fs::read(path).await {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| CredentialError::Parse {
            path: path.to_owned(),
            source,
        })
}

/// Writes the credential readable by its owner only, atomically: a temporary file, synced,
/// renamed over `path`, and the directory synced, so a crash leaves the old state or the
/// new one.
pub async fn save(path: &Path, credential: &NodeCredential) -> Result<(), CredentialError> {
    let failed = |source| CredentialError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(credential)
        .map_err(io::Error::other)
        .map_err(failed)?;
    let temp = path.with_extension("json.tmp");
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .await
        .map_err(failed)?;
    file.write_all(&text).await.map_err(failed)?;
    file.sync_all().await.map_err(failed)?;
    drop(file);
    tokio::fs::rename(&temp, path).await.map_err(failed)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tokio::fs::File::open(dir)
        .await
        .map_err(failed)?
        .sync_all()
        .await
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn saves_privately_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIAL_FILE);
        assert!(load(&path).await.unwrap().is_none());
        let credential = NodeCredential {
            node_id: "hv01".into(),
            token: "t".repeat(43),
            rpc_key: "k".repeat(43),
        };
        save(&path, &credential).await.unwrap();
        assert_eq!(load(&path).await.unwrap(), Some(credential));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            load(&path).await,
            Err(CredentialError::Parse { .. })
        ));
    }
}
