//! `POST /servers/{id}/action`: one action per request, named by the body's only key.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use nefos_compute::PowerAction;
use nefos_compute_api::types::ConsoleOutput;
use serde_json::Value;

use super::NovaError;
use super::request::{Nova, document};
use crate::ApiState;

pub(crate) async fn action(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let document = document(&bytes)?;
    let (name, argument) = match document.iter().next() {
        Some((name, argument)) if document.len() == 1 => (name.as_str(), argument),
        _ => return Err(NovaError::malformed()),
    };
    let compute = state.compute()?;
    let (caller, request_id, id) = (&nova.caller, nova.request_id.as_str(), id.as_str());
    let power = |action| async move {
        compute
            .power(caller, request_id, id, action)
            .await
            .map(|()| StatusCode::ACCEPTED.into_response())
            .map_err(NovaError::from)
    };
    match name {
        "os-start" => power(PowerAction::Start).await,
        "os-stop" => power(PowerAction::Stop).await,
        "pause" => power(PowerAction::Pause).await,
        "unpause" => power(PowerAction::Unpause).await,
        "suspend" => power(PowerAction::Suspend).await,
        "resume" => power(PowerAction::Resume).await,
        "reboot" => {
            let kind = argument
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    NovaError::bad_request(
                        "Invalid input for field/attribute reboot. 'type' is a required property",
                    )
                })?;
            let hard = match kind.to_ascii_uppercase().as_str() {
                "SOFT" => false,
                "HARD" => true,
                _ => {
                    return Err(NovaError::bad_request(format!(
                        "Invalid input for field/attribute type. Value: {kind}. '{kind}' is \
                         not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"
                    )));
                }
            };
            power(PowerAction::Reboot { hard }).await
        }
        "lock" => {
            let reason = argument.get("locked_reason").and_then(Value::as_str);
            if let Some(reason) = reason
                && (reason.is_empty() || reason.chars().count() > 255)
            {
                return Err(NovaError::bad_request(
                    "Invalid input for field/attribute locked_reason. It must be 1 to 255 \
                     characters",
                ));
            }
            compute.lock_server(caller, id, true, reason).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "unlock" => {
            compute.lock_server(caller, id, false, None).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "resize" => {
            let flavor = match argument.get("flavorRef") {
                Some(Value::String(flavor)) if !flavor.is_empty() => flavor.clone(),
                Some(Value::Number(flavor)) => flavor.to_string(),
                _ => {
                    return Err(NovaError::bad_request(
                        "Invalid input for field/attribute resize. 'flavorRef' is a required \
                         property",
                    ));
                }
            };
            compute
                .resize_server(caller, request_id, id, &flavor)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "confirmResize" => {
            compute.end_resize(caller, request_id, id, false).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "revertResize" => {
            compute.end_resize(caller, request_id, id, true).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "rebuild" => {
            // What of Nova's rebuild is served; the rest (a new key, user data, hostname)
            // is refused rather than dropped: a rebuild meant to replace a leaked key must
            // not quietly keep it.
            const SERVED: [&str; 4] = ["imageRef", "name", "adminPass", "metadata"];
            if let Some(other) = argument
                .as_object()
                .and_then(|fields| fields.keys().find(|k| !SERVED.contains(&k.as_str())))
            {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for field/attribute rebuild. '{other}' is not served by \
                     this cloud's rebuild (only imageRef, name, adminPass and metadata)"
                )));
            }
            let image_ref = match argument.get("imageRef") {
                Some(Value::String(image)) if !image.is_empty() => {
                    image.rsplit('/').next().unwrap_or(image).to_owned()
                }
                _ => {
                    return Err(NovaError::bad_request(
                        "Invalid input for field/attribute rebuild. 'imageRef' is a required \
                         property",
                    ));
                }
            };
            let text = |field: &str| -> Result<Option<String>, NovaError> {
                match argument.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(value)) => Ok(Some(value.clone())),
                    Some(_) => Err(NovaError::bad_request(format!(
                        "Invalid input for field/attribute {field}. It must be a string"
                    ))),
                }
            };
            let metadata = match argument.get("metadata") {
                None | Some(Value::Null) => None,
                Some(value) => Some(serde_json::from_value(value.clone()).map_err(|_| {
                    NovaError::bad_request(
                        "Invalid input for field/attribute metadata. It must be an object of \
                         strings",
                    )
                })?),
            };
            let rebuild = nefos_compute::Rebuild {
                image_ref,
                name: text("name")?,
                admin_pass: text("adminPass")?,
                metadata,
            };
            let (server, admin_pass) = compute
                .rebuild_server(caller, request_id, id, rebuild)
                .await?;
            let addresses = compute
                .server_addresses(caller, std::slice::from_ref(&server))
                .await?;
            let addresses = super::servers::addresses_of(&addresses, &server);
            let mut view =
                serde_json::to_value(super::views::server(&nova, &server, addresses, true))
                    .map_err(|_| NovaError::malformed())?;
            view["adminPass"] = Value::String(admin_pass);
            let location = nova
                .links(&format!("/servers/{id}"))
                .first()
                .map(|l| l.href.clone())
                .unwrap_or_default();
            Ok((
                StatusCode::ACCEPTED,
                [(http::header::LOCATION, location)],
                Json(serde_json::json!({ "server": view })),
            )
                .into_response())
        }
        "createImage" => {
            let name = match argument.get("name") {
                Some(Value::String(name)) => name.clone(),
                _ => {
                    return Err(NovaError::bad_request(
                        "Invalid input for field/attribute createImage. 'name' is a required \
                         property",
                    ));
                }
            };
            let metadata = match argument.get("metadata") {
                None | Some(Value::Null) => Default::default(),
                Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
                    NovaError::bad_request(
                        "Invalid input for field/attribute metadata. It must be an object of \
                         strings",
                    )
                })?,
            };
            let image = compute
                .create_server_image(caller, request_id, id, &name, &metadata)
                .await?;
            // From 2.45 the id is in the body; before, only in Location.
            if nova.version.at_least(45) {
                let body = serde_json::json!({ "image_id": image });
                Ok((StatusCode::ACCEPTED, Json(body)).into_response())
            } else {
                let location = format!(
                    "{}{}/v2/images/{image}",
                    state.public_url(),
                    nefos_image_api::PREFIX
                );
                Ok((StatusCode::ACCEPTED, [(http::header::LOCATION, location)]).into_response())
            }
        }
        "os-migrateLive" => {
            let host = match argument.get("host") {
                None | Some(Value::Null) => None,
                Some(Value::String(host)) if !host.is_empty() => Some(host.as_str()),
                Some(other) => {
                    return Err(NovaError::bad_request(format!(
                        "Invalid input for field/attribute host. Value: {other}. It must be a \
                         string of 1 to 255 characters or null"
                    )));
                }
            };
            // Every disk is copied, whatever `block_migration` says: nodes share no storage.
            match argument.get("block_migration") {
                None | Some(Value::Bool(_)) => {}
                Some(Value::String(value)) if value == "auto" && nova.version.at_least(25) => {}
                Some(other) => {
                    return Err(NovaError::bad_request(format!(
                        "Invalid input for field/attribute block_migration. Value: {other}."
                    )));
                }
            }
            compute
                .live_migrate_server(caller, request_id, id, host)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-getConsoleOutput" => {
            let lines = match argument.get("length") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) if n.as_i64() == Some(-1) => None,
                Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(bad_length)?),
                Some(Value::String(s)) if s == "-1" => None,
                Some(Value::String(s)) => Some(s.parse::<u64>().map_err(|_| bad_length())?),
                Some(_) => return Err(bad_length()),
            };
            let lines = lines.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let output = compute.console_output(caller, id, lines).await?;
            Ok(Json(ConsoleOutput { output }).into_response())
        }
        other => {
            // The server must exist for the caller before the action is judged.
            compute.server(caller, id).await?;
            Err(NovaError::bad_request(format!(
                "There is no such action: {other}"
            )))
        }
    }
}

fn bad_length() -> NovaError {
    NovaError::bad_request(
        "Invalid input for field/attribute length. It must be an integer of at least -1",
    )
}
