//! A client for QMP, QEMU's machine protocol, over a unix socket (docs/design.md §5).
//!
//! QMP is line-delimited JSON. After the greeting and `qmp_capabilities`, every command
//! carries an `id` and its reply echoes it; asynchronous events can arrive at any time,
//! including before the reply to the command that caused them. So one task reads the
//! socket, hands each reply to the caller waiting on its id and fans events out to
//! subscribers, while callers write commands concurrently.
//!
//! QEMU serves one client per QMP socket: keep a [`Qmp`] only as long as it is needed.

mod client;
pub mod commands;
mod error;

pub use client::{Event, Qmp};
pub use commands::QmpCommand;
pub use error::QmpError;
