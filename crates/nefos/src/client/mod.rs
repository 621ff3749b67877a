//! The end-user client: `nefos object …`, `nefos image …`, `nefos server …`,
//! `nefos project …` and `nefos quota …` (more resources as the services appear). It talks to a nefos cloud only through its public
//! APIs, like any OpenStack client.

pub mod account;
pub mod image;
pub mod object;
mod output;
pub mod server;
mod session;
mod settings;

pub use session::Session;
pub use settings::CloudArgs;
