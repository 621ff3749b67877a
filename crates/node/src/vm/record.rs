//! What a node remembers of a VM between calls and across restarts (`vm.json`): the spec
//! and power state last asked for, and the generation and kind of the last operation, so
//! that a retried call is recognised as one.

use std::io;
use std::path::Path;

use nefos_node_api::{PowerState, VmSize, VmSpec};
use serde::{Deserialize, Serialize};

use super::{VmError, durable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Ensure,
    Start,
    Stop,
    Reboot {
        hard: bool,
    },
    Pause,
    Unpause,
    Rebuild,
    Resize,
    ConfirmResize,
    RevertResize,
    Suspend,
    Resume,
    SetNics,
    /// The VM is received from another node.
    Incoming,
    /// The received VM runs here.
    FinishIncoming,
    /// The VM is sent to another node.
    MigrateOut,
    /// Its sending was stopped, or undone.
    CancelMigration,
}

/// A VM this node receives from another: QEMU waits for its state, and accepts the
/// migration's channels from those presenting its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingRecord {
    /// The SHA-256 of the migration's secret, in hex.
    pub secret_hash: String,
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
    /// The sizes before a resize not yet confirmed or reverted; the disk as it was then
    /// is kept beside the VM's (`VmPaths::disk_before_resize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_from: Option<VmSize>,
    /// The power state a suspend began from, so a suspend that fails or is retried after
    /// a crash knows what to give the guest back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_from: Option<PowerState>,
    /// Set while the VM is received from another node and has not run here yet: its disk
    /// is incomplete until then, so it is never booted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<IncomingRecord>,
}

impl VmRecord {
    /// The sizes the record's spec gives the VM.
    pub fn size(&self) -> VmSize {
        VmSize {
            vcpus: self.spec.vcpus,
            ram_mib: self.spec.ram_mib,
            disk_bytes: self.spec.disk_bytes,
        }
    }

    /// Gives the spec these sizes.
    pub fn set_size(&mut self, size: VmSize) {
        self.spec.vcpus = size.vcpus;
        self.spec.ram_mib = size.ram_mib;
        self.spec.disk_bytes = size.disk_bytes;
    }
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
