//! Helpers for nefos tests: a fresh database on each engine, a fresh bucket on the test S3
//! server, the real `nefos` binary run as a child process that is killed when the test
//! ends, and the real kamaki and `openstack` CLIs configured for a cloud.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod database;
mod guest;
pub mod identity;
mod kamaki;
mod netns;
mod openstack;
mod process;
mod rows;
mod s3;
mod vnc;

pub use database::{TestDatabase, each_backend, postgres, sqlite};
pub use guest::{CONSOLE_PULSE, console_gap, ticks};
pub use kamaki::{KAMAKI_ENV, Kamaki};
pub use netns::Lab;
pub use openstack::{OPENSTACK_ENV, OpenStack};
pub use process::{NefosProcess, free_port, read_credentials, serve_args, target_binary, toml_str};
pub use rows::server_row;
pub use s3::{S3_ENV, s3_bucket};
pub use vnc::{ServerInit, vnc_login};
