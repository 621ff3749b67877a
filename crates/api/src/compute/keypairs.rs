//! `/os-keypairs`: import or (before 2.92) generate, list, show, delete (of the caller's keypairs; administrators
//! name another user with `?user_id=`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use nefos_compute::Keypair;
use nefos_compute_api::types::{self, KeypairBody, KeypairCreate, KeypairList};

use super::NovaError;
use super::request::{Nova, body, iso_micros, query_pairs};
use crate::ApiState;

fn view(nova: &Nova, keypair: &Keypair, full: bool) -> types::Keypair {
    types::Keypair {
        name: keypair.name.clone(),
        public_key: keypair.public_key.clone(),
        fingerprint: keypair.fingerprint.clone(),
        user_id: full.then(|| keypair.user_id.clone()),
        key_type: nova.version.at_least(2).then(|| keypair.key_type.clone()),
        created_at: full.then(|| iso_micros(keypair.created_at)),
        private_key: None,
    }
}

fn user_of(raw: Option<&str>) -> Option<String> {
    query_pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "user_id")
        .map(|(_, v)| v)
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    nova: Nova,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let request: KeypairCreate = body(&bytes, "keypair")?;
    let compute = state.compute()?;
    let (user, name, key_type) = (
        request.user_id.as_deref(),
        request.name.as_str(),
        request.key_type.as_deref(),
    );
    let (keypair, private_key) = match &request.public_key {
        Some(public_key) => {
            let keypair = compute
                .import_keypair(&nova.caller, user, name, key_type, public_key)
                .await?;
            (keypair, None)
        }
        // From 2.92 a public key is required (Nova no longer generates keys).
        None if nova.version.at_least(92) => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute keypair. 'public_key' is a required \
                 property",
            ));
        }
        None => {
            let (keypair, private_key) = compute
                .generate_keypair(&nova.caller, user, name, key_type)
                .await?;
            (keypair, Some(private_key))
        }
    };
    let status = if nova.version.at_least(2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = KeypairBody {
        keypair: types::Keypair {
            private_key,
            ..view(&nova, &keypair, true)
        },
    };
    Ok((status, Json(body)).into_response())
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<KeypairList>, NovaError> {
    let user = user_of(raw.as_deref());
    let keypairs = state
        .compute()?
        .list_keypairs(&nova.caller, user.as_deref())
        .await?;
    Ok(Json(KeypairList {
        keypairs: keypairs
            .iter()
            .map(|k| KeypairBody {
                keypair: view(&nova, k, false),
            })
            .collect(),
    }))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    nova: Nova,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<KeypairBody>, NovaError> {
    let user = user_of(raw.as_deref());
    let keypair = state
        .compute()?
        .keypair(&nova.caller, user.as_deref(), &name)
        .await?;
    Ok(Json(KeypairBody {
        keypair: view(&nova, &keypair, true),
    }))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    nova: Nova,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, NovaError> {
    let user = user_of(raw.as_deref());
    state
        .compute()?
        .delete_keypair(&nova.caller, user.as_deref(), &name)
        .await?;
    Ok(if nova.version.at_least(2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}
