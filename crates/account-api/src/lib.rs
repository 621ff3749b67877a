//! Synnefo's Astakos account API, `/account/v1.0`, declared once (docs/account-api.md).
//!
//! The paths ([`paths`]) and the JSON bodies of every request and answer, in the shapes
//! kamaki 0.16 and astakosclient send and read. The server (`nefos-api`) renders these
//! types and the end-user client reads them; nothing here knows HTTP servers or the
//! domain crates.
//!
//! Astakos names quota holders `user:<uuid>` and sources `project:<uuid>`; nefos counts a
//! member's usage in a project and the project's as a whole, so a provision's holder is the
//! member and its source the project ([`Provision`]).

mod commissions;
mod errors;
mod ids;
mod memberships;
pub mod paths;
mod projects;
mod quotas;
mod user_catalogs;

pub use commissions::{
    CommissionAction, CommissionInfo, IssueCommission, IssuedCommission, Provision,
    ResolveCommissions, ResolvedCommissions,
};
pub use errors::{ErrorBody, Fault, OverLimitData, fault_name};
pub use ids::IdText;
pub use memberships::{
    ApplicationsQuery, MembershipAction, MembershipCreated, MembershipRequest, MembershipView,
    MembershipsQuery,
};
pub use projects::{
    ActionArgs, ApplicationView, Applied, GrantView, ProjectAction, ProjectSpec, ProjectView,
    ProjectsQuery,
};
pub use quotas::{
    ProjectQuotaView, ProjectQuotas, QuotaView, ResourceInfo, Resources, ServiceProjectQuotas,
    ServiceQuotas, ServiceQuotasQuery, UserQuotas,
};
pub use user_catalogs::{UserCatalogs, UserCatalogsQuery};

/// Where the account API is served, under the cloud's public URL.
pub const PREFIX: &str = "/account/v1.0";

/// The API version the service catalog advertises for it (astakosclient looks for
/// exactly this `versionId`).
pub const VERSION: &str = "v1.0";

/// The catalog name astakosclient looks the account service up by.
pub const CATALOG_NAME: &str = "astakos_account";

/// The catalog type of the account service.
pub const CATALOG_TYPE: &str = "account";

/// Astakos's holder prefix of a user.
pub const USER_PREFIX: &str = "user:";

/// Astakos's holder and source prefix of a project.
pub const PROJECT_PREFIX: &str = "project:";

/// Astakos's `max_members` of a project without a limit (2^63 − 1).
pub const UNLIMITED_MEMBERS: i64 = i64::MAX;
