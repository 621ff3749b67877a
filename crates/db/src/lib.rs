//! The nefos control-plane database (docs/design.md §3).
//!
//! One schema and one query codebase for both supported engines: an embedded SQLite file
//! (the default, WAL with `synchronous=FULL`) and PostgreSQL for multi-node clouds. Queries
//! are written once in the SQL both engines accept (`$N` placeholders, portable types: text
//! ids, `BIGINT` microsecond timestamps, `BOOLEAN`), and run through sqlx's `Any` driver.

pub mod compute;
mod database;
mod error;
mod flag;
pub mod identity;
pub mod image;
mod migrate;
pub mod network;
pub mod quota;
pub mod saga;
mod singleton;
pub mod storage;
pub mod time;
mod transaction;

pub use database::{Backend, Database, PoolSettings};
pub use error::DbError;
pub use migrate::{MIGRATIONS, Migration, SchemaStatus};
pub use singleton::SingletonGuard;
pub use transaction::Transaction;

/// A connection, whichever engine is behind it (a [`Transaction`] dereferences to one).
pub type Connection = sqlx::AnyConnection;
