//! Helpers for nefos tests: a fresh database on each engine, and the real `nefos` binary
//! run as a child process that is killed when the test ends.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod database;
mod process;

pub use database::{TestDatabase, each_backend, postgres, sqlite};
pub use process::{NefosProcess, free_port, read_credentials, target_binary};
