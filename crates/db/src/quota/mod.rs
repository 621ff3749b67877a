//! Queries of the quota engine and of Synnefo projects: resources, holdings, commissions,
//! usage events, project grants, applications and memberships.

mod applications;
mod commissions;
mod holdings;
mod instances;
mod memberships;
mod project_state;
mod resources;
mod usage_events;

pub use applications::*;
pub use commissions::*;
pub use holdings::*;
pub use instances::*;
pub use memberships::*;
pub use project_state::*;
pub use resources::*;
pub use usage_events::*;
