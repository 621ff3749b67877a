//! What a node remembers of a VM between calls and across restarts (`vm.json`): the spec
//! and power state last asked for, and the generation and kind of the last operation, so
//! that a retried call is recognised as one.

use std::io::{self, Write};
use std::path::Path;

use nefos_node_api::{PowerState, VmSpec};
use serde::{Deserialize, Serialize};

use super::VmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Ensure,
    Start,
    Stop,
    Reboot { hard: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub id: String,
    pub generation: u64,
    pub operation: Operation,
    pub power: PowerState,
    pub spec: VmSpec,
    pub image_id: String,
}

/// What to do with a call of generation `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A new operation: apply it and record it.
    New,
    /// The same operation again: converge, but do not repeat one-shot effects (a reboot).
    Retry,
}

impl VmRecord {
    /// Checks a call against the last one applied.
    pub fn admit(&self, generation: u64, operation: Operation) -> Result<Admission, VmError> {
        if generation < self.generation {
            return Err(VmError::Stale {
                got: generation,
                current: self.generation,
            });
        }
        if generation > self.generation {
            return Ok(Admission::New);
        }
        if operation == self.operation {
            Ok(Admission::Retry)
        } else {
            Err(VmError::GenerationReused { generation })
        }
    }

    pub fn load(path: &Path) -> Result<Option<VmRecord>, VmError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| VmError::Io {
                    path: path.to_owned(),
                    source: io::Error::new(io::ErrorKind::InvalidData, source),
                }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VmError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Replaces the record atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), VmError> {
        let io = |source| VmError::Io {
            path: path.to_owned(),
            source,
        };
        let temp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let mut file = std::fs::File::create(&temp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}
