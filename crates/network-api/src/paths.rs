//! Neutron's paths, under [`crate::PREFIX`].

/// `GET`, unauthenticated: the versions.
pub const ROOT: &str = "/";
/// `GET`: the v2.0 resources.
pub const V20: &str = "/v2.0";
pub const V20_SLASH: &str = "/v2.0/";

pub const EXTENSIONS: &str = "/v2.0/extensions";
pub const EXTENSION: &str = "/v2.0/extensions/{alias}";

/// `GET` list (filters, `fields`, sorting, paging), `POST` create.
pub const NETWORKS: &str = "/v2.0/networks";
/// `GET`, `PUT`, `DELETE`.
pub const NETWORK: &str = "/v2.0/networks/{network_id}";
pub const SUBNETS: &str = "/v2.0/subnets";
pub const SUBNET: &str = "/v2.0/subnets/{subnet_id}";
pub const PORTS: &str = "/v2.0/ports";
pub const PORT: &str = "/v2.0/ports/{port_id}";

pub const SECURITY_GROUPS: &str = "/v2.0/security-groups";
pub const SECURITY_GROUP: &str = "/v2.0/security-groups/{security_group_id}";
/// `GET` list, `POST` create; rules are created and deleted, never changed.
pub const SECURITY_GROUP_RULES: &str = "/v2.0/security-group-rules";
pub const SECURITY_GROUP_RULE: &str = "/v2.0/security-group-rules/{rule_id}";

/// `GET` a project's limits (set with `nefos admin quota set`, not here).
pub const QUOTA: &str = "/v2.0/quotas/{project_id}";
/// `GET` limits with usage; openstacksdk appends `.json`.
pub const QUOTA_DETAILS: &str = "/v2.0/quotas/{project_id}/details";
pub const QUOTA_DETAILS_JSON: &str = "/v2.0/quotas/{project_id}/details.json";
