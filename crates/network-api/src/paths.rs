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

/// Routers; interfaces are added and removed with `PUT` on the two actions.
pub const ROUTERS: &str = "/v2.0/routers";
pub const ROUTER: &str = "/v2.0/routers/{router_id}";
pub const ROUTER_ADD_INTERFACE: &str = "/v2.0/routers/{router_id}/add_router_interface";
pub const ROUTER_REMOVE_INTERFACE: &str = "/v2.0/routers/{router_id}/remove_router_interface";
/// Floating IPs: `PUT` with a `port_id` associates, with `null` disassociates.
pub const FLOATING_IPS: &str = "/v2.0/floatingips";
pub const FLOATING_IP: &str = "/v2.0/floatingips/{floatingip_id}";

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
