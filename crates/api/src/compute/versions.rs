//! The version list at compute's root and the v2.1 version document: unauthenticated, as
//! keystoneauth reads them before it has a token to spare.

use axum::Json;
use axum::extract::State;
use nefos_compute_api::microversion::{MAX, MIN};
use nefos_compute_api::types::{Link, MediaType, Version, VersionDocument, Versions};

use crate::ApiState;

fn v21(state: &ApiState) -> Version {
    Version {
        id: "v2.1".to_owned(),
        status: "CURRENT".to_owned(),
        version: MAX.to_string(),
        min_version: MIN.to_string(),
        updated: "2013-07-23T11:33:21Z".to_owned(),
        links: vec![Link::new(
            "self",
            format!("{}{}/v2.1/", state.public_url(), nefos_compute_api::PREFIX),
        )],
        media_types: Vec::new(),
    }
}

pub(crate) async fn root(State(state): State<ApiState>) -> Json<Versions> {
    Json(Versions {
        versions: vec![v21(&state)],
    })
}

pub(crate) async fn v21_document(state: &ApiState) -> VersionDocument {
    let mut version = v21(state);
    version.links.push(Link {
        rel: "describedby".to_owned(),
        href: "https://docs.openstack.org/api-ref/compute/".to_owned(),
        media_type: Some("text/html".to_owned()),
    });
    version.media_types = vec![MediaType {
        base: "application/json".to_owned(),
        media_type: "application/vnd.openstack.compute+json;version=2.1".to_owned(),
    }];
    VersionDocument { version }
}

pub(crate) async fn v21_route(State(state): State<ApiState>) -> Json<VersionDocument> {
    Json(v21_document(&state).await)
}
