//! Nova's paths, under [`crate::PREFIX`].

/// `GET`, unauthenticated: the versions.
pub const ROOT: &str = "/";
/// `GET`, unauthenticated: the v2.1 version document.
pub const V21: &str = "/v2.1/";

/// The paths under `/v2.1`.
pub const V21_PREFIX: &str = "/v2.1";

/// `GET` brief list, `POST` create (administrators).
pub const FLAVORS: &str = "/flavors";
pub const FLAVORS_DETAIL: &str = "/flavors/detail";
/// `GET`, `PUT` (description), `DELETE`.
pub const FLAVOR: &str = "/flavors/{flavor_id}";
/// `POST` `addTenantAccess` / `removeTenantAccess`.
pub const FLAVOR_ACTION: &str = "/flavors/{flavor_id}/action";
pub const FLAVOR_ACCESS: &str = "/flavors/{flavor_id}/os-flavor-access";
/// `GET`, `POST` (merge).
pub const FLAVOR_EXTRA_SPECS: &str = "/flavors/{flavor_id}/os-extra_specs";
/// `GET`, `PUT`, `DELETE`.
pub const FLAVOR_EXTRA_SPEC: &str = "/flavors/{flavor_id}/os-extra_specs/{key}";

pub const KEYPAIRS: &str = "/os-keypairs";
pub const KEYPAIR: &str = "/os-keypairs/{name}";

/// `GET` brief list, `POST` create.
pub const SERVERS: &str = "/servers";
pub const SERVERS_DETAIL: &str = "/servers/detail";
/// `GET`, `PUT`, `DELETE`.
pub const SERVER: &str = "/servers/{server_id}";
/// `POST` one action (`os-start`, `reboot`, `os-getConsoleOutput`, …).
pub const SERVER_ACTION: &str = "/servers/{server_id}/action";
/// `GET`, `PUT` (replace), `POST` (merge).
pub const SERVER_METADATA: &str = "/servers/{server_id}/metadata";
/// `GET`, `PUT`, `DELETE`.
pub const SERVER_METADATA_KEY: &str = "/servers/{server_id}/metadata/{key}";
/// `GET`, `PUT` (replace), `DELETE` (all).
pub const SERVER_TAGS: &str = "/servers/{server_id}/tags";
/// `GET` (check), `PUT`, `DELETE`.
pub const SERVER_TAG: &str = "/servers/{server_id}/tags/{tag}";
/// `POST` `{"remote_console": {"protocol": "vnc", "type": "novnc"}}`.
/// `GET` a server's interfaces, `POST` plug a port (or a network's new port) in.
pub const SERVER_INTERFACES: &str = "/servers/{server_id}/os-interface";
/// `GET` one, `DELETE` unplug it.
pub const SERVER_INTERFACE: &str = "/servers/{server_id}/os-interface/{port_id}";
pub const SERVER_REMOTE_CONSOLES: &str = "/servers/{server_id}/remote-consoles";
pub const SERVER_ACTIONS: &str = "/servers/{server_id}/os-instance-actions";
/// `GET`, administrators: what a running server uses.
pub const SERVER_DIAGNOSTICS: &str = "/servers/{server_id}/diagnostics";
pub const SERVER_ACTION_RECORD: &str = "/servers/{server_id}/os-instance-actions/{request_id}";

/// Administrators: every move of servers (`?instance_uuid=&status=&migration_type=&host=`).
pub const MIGRATIONS: &str = "/os-migrations";
/// Administrators: a server's live migrations under way.
pub const SERVER_MIGRATIONS: &str = "/servers/{server_id}/migrations";
/// `GET` one, `DELETE` abort it (2.24).
pub const SERVER_MIGRATION: &str = "/servers/{server_id}/migrations/{migration_id}";

pub const LIMITS: &str = "/limits";
pub const QUOTA_SET: &str = "/os-quota-sets/{project_id}";
pub const QUOTA_SET_DETAIL: &str = "/os-quota-sets/{project_id}/detail";
pub const QUOTA_SET_DEFAULTS: &str = "/os-quota-sets/{project_id}/defaults";

/// Outside `/v2.1`: noVNC's pages, and the console websocket they open (`?token=`).
pub const CONSOLE_PAGES: &str = "/console";
pub const CONSOLE_WEBSOCKET: &str = "/console/websocket";

/// Administrators: the nodes as hypervisors (`?hypervisor_hostname_pattern=`).
pub const HYPERVISORS: &str = "/os-hypervisors";
pub const HYPERVISORS_DETAIL: &str = "/os-hypervisors/detail";
pub const HYPERVISOR: &str = "/os-hypervisors/{hypervisor_id}";
/// Administrators: the nodes' compute services (`?host=&binary=`); `PUT` one (2.53+)
/// `{"status": "disabled", "disabled_reason": …}` drains its node.
pub const SERVICES: &str = "/os-services";
pub const SERVICE: &str = "/os-services/{service_id}";
