//! The compute API under [`nefos_compute_api::PREFIX`] (docs/servers.md): Nova v2.1 over
//! [`nefos_compute::Compute`], in the shapes of [`nefos_compute_api`], each response as
//! the microversion asked for defines it. Nova's errors (`error.rs`) are the one mapping
//! of `ComputeError` to statuses.

mod console;
mod cyclades;
mod diagnostics;
mod error;
mod flavors;
mod hypervisors;
mod interfaces;
mod keypairs;
mod limits;
mod migrations;
mod request;
mod server_actions;
mod server_extras;
mod servers;
mod versions;
mod views;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderValue;
use nefos_compute_api::microversion::{self, Microversion};
use nefos_compute_api::paths;

use crate::ApiState;

pub(crate) use cyclades::time as cyclades_time;
pub(crate) use error::NovaError;
pub(crate) use request::Nova;
/// The version list, also served at the prefix with a trailing slash (keystoneauth asks
/// there first).
pub(crate) use versions::root as version_list;

/// Routes under [`nefos_compute_api::PREFIX`].
pub(crate) fn router() -> Router<ApiState> {
    let v21 = Router::new()
        .route(paths::FLAVORS, get(flavors::list).post(flavors::create))
        .route(paths::FLAVORS_DETAIL, get(flavors::detail))
        .route(
            paths::FLAVOR,
            get(flavors::show)
                .put(flavors::update)
                .delete(flavors::delete),
        )
        .route(paths::FLAVOR_ACTION, post(flavors::action))
        .route(paths::FLAVOR_ACCESS, get(flavors::access))
        .route(
            paths::FLAVOR_EXTRA_SPECS,
            get(flavors::extra_specs).post(flavors::set_extra_specs),
        )
        .route(
            paths::FLAVOR_EXTRA_SPEC,
            get(flavors::extra_spec)
                .put(flavors::put_extra_spec)
                .delete(flavors::delete_extra_spec),
        )
        .route(paths::KEYPAIRS, get(keypairs::list).post(keypairs::create))
        .route(paths::KEYPAIR, get(keypairs::show).delete(keypairs::delete))
        .route(paths::SERVERS, get(servers::list).post(servers::create))
        .route(paths::SERVERS_DETAIL, get(servers::detail))
        .route(
            paths::SERVER,
            get(servers::show)
                .put(servers::update)
                .delete(servers::delete),
        )
        .route(paths::SERVER_ACTION, post(server_actions::action))
        .route(
            paths::SERVER_METADATA,
            get(server_extras::metadata)
                .put(server_extras::replace_metadata)
                .post(server_extras::merge_metadata),
        )
        .route(
            paths::SERVER_METADATA_KEY,
            get(server_extras::metadata_item)
                .put(server_extras::put_metadata_item)
                .delete(server_extras::delete_metadata_item),
        )
        .route(
            paths::SERVER_TAGS,
            get(server_extras::tags)
                .put(server_extras::replace_tags)
                .delete(server_extras::delete_tags),
        )
        .route(
            paths::SERVER_TAG,
            get(server_extras::check_tag)
                .put(server_extras::add_tag)
                .delete(server_extras::delete_tag),
        )
        .route(paths::SERVER_REMOTE_CONSOLES, post(console::create))
        .route(
            paths::SERVER_INTERFACES,
            get(interfaces::list).post(interfaces::attach),
        )
        .route(
            paths::SERVER_INTERFACE,
            get(interfaces::show).delete(interfaces::detach),
        )
        .route(paths::SERVER_ACTIONS, get(server_extras::actions))
        .route(paths::SERVER_DIAGNOSTICS, get(diagnostics::show))
        .route(paths::SERVER_ACTION_RECORD, get(server_extras::action))
        .route(paths::HYPERVISORS, get(hypervisors::list))
        .route(paths::HYPERVISORS_DETAIL, get(hypervisors::detail))
        .route(paths::HYPERVISOR, get(hypervisors::show))
        .route(paths::SERVICES, get(hypervisors::services))
        .route(
            paths::SERVICE,
            axum::routing::put(hypervisors::update_service),
        )
        .route(paths::MIGRATIONS, get(migrations::list))
        .route(paths::SERVER_MIGRATIONS, get(migrations::server_list))
        .route(
            paths::SERVER_MIGRATION,
            get(migrations::server_show).delete(migrations::abort),
        )
        .route(paths::LIMITS, get(limits::limits))
        .route(paths::QUOTA_SET, get(limits::quota_set))
        .route(paths::QUOTA_SET_DETAIL, get(limits::quota_set_detail))
        .route(paths::QUOTA_SET_DEFAULTS, get(limits::quota_set_defaults))
        .route("/", get(versions::v21_route))
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(negotiate));
    Router::new()
        .route(paths::ROOT, get(versions::root))
        // The version document at `/v2.1/` as Nova serves it (the nested router's `/`
        // answers `/v2.1`), with the microversion negotiated as for the rest.
        .route(
            paths::V21,
            get(versions::v21_route).layer(axum::middleware::from_fn(negotiate)),
        )
        .route(paths::CONSOLE_WEBSOCKET, get(console::websocket))
        .nest_service(
            paths::CONSOLE_PAGES,
            tower_http::services::ServeDir::new(console::NOVNC_DIR),
        )
        .nest(paths::V21_PREFIX, v21)
        .nest(
            nefos_compute_api::cyclades::PREFIX,
            cyclades::router().fallback(error::unknown_route),
        )
        .fallback(error::unknown_route)
}

/// Negotiates the request's microversion (refusing what is malformed or not served) and
/// echoes it, with `Vary`, on the response.
async fn negotiate(mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    let standard = values(microversion::HEADER);
    let legacy = values(microversion::LEGACY_HEADER);
    let version = match Microversion::negotiate(
        standard.iter().map(String::as_str),
        legacy.iter().map(String::as_str),
    ) {
        Ok(version) => version,
        Err(error) => return NovaError::from(error).into_response(),
    };
    request.extensions_mut().insert(version);
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("{} {version}", microversion::SERVICE)) {
        out.insert(microversion::HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&version.to_string()) {
        out.insert(microversion::LEGACY_HEADER, value);
    }
    out.append(
        http::header::VARY,
        HeaderValue::from_static(microversion::HEADER),
    );
    out.append(
        http::header::VARY,
        HeaderValue::from_static(microversion::LEGACY_HEADER),
    );
    response
}
