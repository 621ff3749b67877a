//! What a node remembers of a VM between calls and across restarts (`vm.json`): the spec
//! and power state last asked for, and the generation and kind of the last operation, so
//! that a retried call is recognised as one.

use std::io;
use std::path::Path;

use nefos_node_api::{PowerState, VmSpec};
use serde::{Deserialize, Serialize};

use super::{VmError, durable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Ensure,
    Start,
    Stop,
    Reboot { hard: bool },
    Pause,
    Unpause,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub id: String,
    pub generation: u64,
    pub operation: Operation,
    pub power: PowerState,
    pub spec: VmSpec,
    pub image_id: String,
    /// The operation was recorded but has not finished: a retry of it does it again.
    /// Only one-shot operations (a reboot) need this; the others converge on the state.
    #[serde(default)]
    pub unfinished: bool,
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

    /// Replaces the record atomically and durably. Blocking.
    pub fn save(&self, path: &Path) -> Result<(), VmError> {
        let io = |source| VmError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        durable::write(path, &bytes).map_err(io)
    }
}
