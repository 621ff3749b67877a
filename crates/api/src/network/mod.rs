//! Neutron v2.0 under [`nefos_network_api::PREFIX`] (docs/networks.md): networks,
//! subnets, ports, routers, floating IPs, security groups and quotas over [`nefos_network::Networks`], in the shapes of
//! [`nefos_network_api`]. Neutron's errors (`error.rs`) are the one mapping of
//! `NetworkError` to statuses; `listing.rs` gives every collection Neutron's filters,
//! field selection, sorting and paging.

mod cyclades;
mod error;
mod floating_ips;
mod listing;
mod networks;
mod ports;
mod quotas;
mod request;
mod routers;
mod security_groups;
mod subnets;
mod versions;
mod views;

use axum::Router;
use axum::routing::{get, put};
use nefos_network_api::paths;

use crate::ApiState;

pub(crate) use error::NeutronError;

/// Routes under [`nefos_network_api::PREFIX`].
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .nest(nefos_network_api::cyclades::NESTED, cyclades::router())
        .route(paths::ROOT, get(versions::versions))
        .route(paths::V20, get(versions::resources))
        .route(paths::V20_SLASH, get(versions::resources))
        .route(paths::EXTENSIONS, get(versions::extensions))
        .route(paths::EXTENSION, get(versions::show_extension))
        .route(paths::NETWORKS, get(networks::list).post(networks::create))
        .route(
            paths::NETWORK,
            get(networks::show)
                .put(networks::update)
                .delete(networks::delete),
        )
        .route(paths::SUBNETS, get(subnets::list).post(subnets::create))
        .route(
            paths::SUBNET,
            get(subnets::show)
                .put(subnets::update)
                .delete(subnets::delete),
        )
        .route(paths::PORTS, get(ports::list).post(ports::create))
        .route(
            paths::PORT,
            get(ports::show).put(ports::update).delete(ports::delete),
        )
        .route(paths::ROUTERS, get(routers::list).post(routers::create))
        .route(
            paths::ROUTER,
            get(routers::show)
                .put(routers::update)
                .delete(routers::delete),
        )
        .route(paths::ROUTER_ADD_INTERFACE, put(routers::add_interface))
        .route(
            paths::ROUTER_REMOVE_INTERFACE,
            put(routers::remove_interface),
        )
        .route(
            paths::FLOATING_IPS,
            get(floating_ips::list).post(floating_ips::create),
        )
        .route(
            paths::FLOATING_IP,
            get(floating_ips::show)
                .put(floating_ips::update)
                .delete(floating_ips::delete),
        )
        .route(
            paths::SECURITY_GROUPS,
            get(security_groups::list).post(security_groups::create),
        )
        .route(
            paths::SECURITY_GROUP,
            get(security_groups::show)
                .put(security_groups::update)
                .delete(security_groups::delete),
        )
        .route(
            paths::SECURITY_GROUP_RULES,
            get(security_groups::list_rules).post(security_groups::create_rule),
        )
        .route(
            paths::SECURITY_GROUP_RULE,
            get(security_groups::show_rule).delete(security_groups::delete_rule),
        )
        .route(paths::QUOTA, get(quotas::show).put(quotas::update))
        .route(paths::QUOTA_DETAILS, get(quotas::details))
        .route(paths::QUOTA_DETAILS_JSON, get(quotas::details))
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
}
