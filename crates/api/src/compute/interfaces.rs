//! `/servers/{id}/os-interface`: a server's ports, plugged in and out while it runs.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_compute::NetworkRequest;
use nefos_compute_api::types::{
    AttachInterface, InterfaceAttachment, InterfaceAttachmentBody, InterfaceAttachments,
    InterfaceFixedIp,
};
use nefos_network::Port;

use super::NovaError;
use super::request::{Nova, body};
use crate::ApiState;

fn attachment(port: &Port) -> InterfaceAttachment {
    InterfaceAttachment {
        port_state: port.status.clone(),
        fixed_ips: port
            .fixed_ips
            .iter()
            .map(|ip| InterfaceFixedIp {
                subnet_id: ip.subnet_id.clone(),
                ip_address: ip.ip_address.to_string(),
            })
            .collect(),
        port_id: port.id.clone(),
        net_id: port.network_id.clone(),
        mac_addr: port.mac_address.clone(),
        tag: None,
    }
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<InterfaceAttachments>, NovaError> {
    let ports = state.compute()?.interfaces(&nova.caller, &id).await?;
    Ok(Json(InterfaceAttachments {
        interface_attachments: ports.iter().map(attachment).collect(),
    }))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, port_id)): Path<(String, String)>,
) -> Result<Json<InterfaceAttachmentBody>, NovaError> {
    let ports = state.compute()?.interfaces(&nova.caller, &id).await?;
    let port = ports.iter().find(|p| p.id == port_id).ok_or_else(|| {
        NovaError::not_found(format!(
            "Instance {id} does not have an interface with port {port_id}"
        ))
    })?;
    Ok(Json(InterfaceAttachmentBody {
        interface_attachment: attachment(port),
    }))
}

pub(crate) async fn attach(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<InterfaceAttachmentBody>, NovaError> {
    let request: AttachInterface = body(&bytes, "interfaceAttachment")?;
    let fixed_ip = match request.fixed_ips.as_deref() {
        None | Some([]) => None,
        Some([one]) => Some(one.ip_address.parse().map_err(|_| {
            NovaError::bad_request(format!("'{}' is not a valid IP address", one.ip_address))
        })?),
        Some(_) => {
            return Err(NovaError::bad_request(
                "Invalid input: at most one fixed IP may be requested",
            ));
        }
    };
    if request.port_id.is_some() && (request.net_id.is_some() || fixed_ip.is_some()) {
        return Err(NovaError::bad_request(
            "Must not input both network_id and port_id",
        ));
    }
    if request.port_id.is_none() && request.net_id.is_none() {
        return Err(NovaError::bad_request(
            "Automatic allocation of a network is not supported: name a port or a network",
        ));
    }
    let wanted = NetworkRequest {
        network: request.net_id,
        port: request.port_id,
        fixed_ip,
    };
    let port = state
        .compute()?
        .attach_interface(&nova.caller, &nova.request_id, &id, &wanted)
        .await?;
    Ok(Json(InterfaceAttachmentBody {
        interface_attachment: attachment(&port),
    }))
}

pub(crate) async fn detach(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, port_id)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    state
        .compute()?
        .detach_interface(&nova.caller, &nova.request_id, &id, &port_id)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
