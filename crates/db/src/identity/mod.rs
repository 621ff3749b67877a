//! Queries of the identity service: users, projects, role assignments and tokens.

mod projects;
mod roles;
mod tokens;
mod users;

pub use projects::*;
pub use roles::*;
pub use tokens::*;
pub use users::*;
