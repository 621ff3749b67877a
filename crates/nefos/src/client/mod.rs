//! The end-user client: `nefos object …` (more resources as the services appear).
//! It talks to a nefos cloud only through its public APIs, like any OpenStack client.

pub mod object;
mod session;
mod settings;

pub use session::Session;
pub use settings::CloudArgs;
