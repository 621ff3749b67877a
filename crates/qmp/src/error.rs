use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum QmpError {
    #[error("cannot connect to the QMP socket {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("QMP I/O failed")]
    Io(#[source] io::Error),
    #[error("QEMU sent something that is not QMP: {line}")]
    Protocol { line: String },
    #[error("QEMU closed the QMP connection")]
    Disconnected,
    #[error("QMP {command} got no answer within {timeout:?}")]
    Timeout {
        command: &'static str,
        timeout: Duration,
    },
    #[error("QMP {command} failed: {class}: {desc}")]
    Command {
        command: &'static str,
        class: String,
        desc: String,
    },
    #[error("cannot encode QMP {command}")]
    Encode {
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("unexpected reply to QMP {command}")]
    Decode {
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
}
