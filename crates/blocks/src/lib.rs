//! The content-addressed block store of nefos (docs/design.md §4): objects, images and
//! snapshots are lists of 4 MiB blocks named by their Pithos hash, each stored once
//! whatever refers to it, on a local filesystem (`fs`) or an S3-compatible service (`s3`).
//!
//! - [`hash`]: block hashes, the Merkle root of a hashmap, and a [`Chunker`] that cuts an
//!   upload into blocks as it arrives.
//! - [`BlockStore`]: put, get, touch and list blocks, over either backend
//!   ([`BlockStoreConfig`]).
//! - [`gc`]: garbage collection of unreferenced blocks, safe while uploads run, and
//!   verification of every block.
//!
//! This crate holds no HTTP and no database: callers own the references to blocks.

mod direct;
mod error;
mod fs;
pub mod gc;
pub mod hash;
mod s3;
mod store;

pub use error::{BlockError, Result};
pub use gc::{DamagedBlock, GcPass, GcReport, VerifyReport, collect_garbage, verify_all};
pub use hash::{
    BLOCK_SIZE, BlockHash, Chunker, Hashmap, ParseBlockHashError, StreamHasher, hash_block,
    merkle_root, strip_trailing_zeros,
};
pub use store::{
    BlockInfo, BlockStore, BlockStoreConfig, MAX_CONCURRENT_OPERATIONS, VerifyOutcome,
};
