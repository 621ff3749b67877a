//! Neutron v2.0 declared once (docs/networks.md): the paths under [`PREFIX`] and the
//! resources as Neutron shows them, which the server (`nefos-api`) renders and clients
//! read. Field names are Neutron's, extension attributes (`router:external`,
//! `binding:host_id`, `provider:*`) included.

pub mod cyclades;
pub mod paths;
mod views;

pub use nefos_route::fill;
pub use views::*;

/// Where the network service is served, under the cloud's public URL. Its root is the
/// versions document; the API is under `/v2.0`.
pub const PREFIX: &str = "/network";

/// The catalog's service type and name.
pub const CATALOG_TYPE: &str = "network";
pub const CATALOG_NAME: &str = "neutron";

/// The extensions nefos's Neutron serves, as `(alias, name, description)`; clients ask
/// `/v2.0/extensions` before they use one. Only what works is listed.
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Other addresses (and MACs) a port may send from",
    ),
    (
        "binding",
        "Port Binding",
        "The node a port is bound to (binding:host_id)",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "enable_snat on a router's external gateway",
    ),
    (
        "external-net",
        "Neutron external network",
        "router:external on networks",
    ),
    (
        "fields",
        "Fields",
        "Select the fields of a listing with ?fields=",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Unknown filters are refused",
    ),
    ("net-mtu", "Network MTU", "The MTU of each network"),
    (
        "pagination",
        "Pagination support",
        "limit, marker and page_reverse on listings",
    ),
    (
        "port-security",
        "Port Security",
        "port_security_enabled on networks and ports",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Routers joining private subnets to an external network, with SNAT and floating IPs",
    ),
    (
        "security-group",
        "security-group",
        "Security groups and their rules, enforced statefully on each port",
    ),
    (
        "project-id",
        "project_id field enabled",
        "project_id beside tenant_id",
    ),
    (
        "provider",
        "Provider Network",
        "The VXLAN segment of a network, for administrators",
    ),
    (
        "quota-check-limit",
        "Quota engine limit check",
        "check_limit on a quota update: no limit below what is in use",
    ),
    (
        "quotas",
        "Quota management support",
        "Quotas from the quota engine",
    ),
    (
        "sorting",
        "Sorting support",
        "sort_key and sort_dir on listings",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "description on every resource",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "revision_number on every resource",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "created_at and updated_at",
    ),
];
