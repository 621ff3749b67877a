//! VNC consoles: `POST /servers/{id}/remote-consoles` gives a URL of noVNC (Debian's
//! `novnc`, served under `/compute/console/`) whose websocket, `/compute/console/websocket`
//! with the ticket in its query, carries the server's RFB stream from its node. The
//! websocket needs no token: the ticket is the authorisation, signed and expiring.

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::NovaError;
use super::request::{Nova, document, query_pairs};
use crate::ApiState;

/// Where Debian's novnc package installs noVNC.
pub(crate) const NOVNC_DIR: &str = "/usr/share/novnc";

pub(crate) async fn create(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, NovaError> {
    let document = document(&bytes)?;
    let console = document
        .get("remote_console")
        .ok_or_else(|| NovaError::bad_request("'remote_console' is a required property"))?;
    let protocol = console["protocol"].as_str().unwrap_or_default();
    let kind = console["type"].as_str().unwrap_or_default();
    if protocol.is_empty() || kind.is_empty() {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute remote_console. 'protocol' and 'type' are \
             required properties",
        ));
    }
    if (protocol, kind) != ("vnc", "novnc") {
        return Err(NovaError::bad_request(format!(
            "Unavailable console type {kind}."
        )));
    }
    let ticket = state.compute()?.vnc_console(&nova.caller, &id).await?;
    let websocket = format!("compute/console/websocket?token={}", ticket.token);
    let url = format!(
        "{}/compute/console/vnc_lite.html?path={}",
        state.public_url(),
        percent_encoding::utf8_percent_encode(&websocket, percent_encoding::NON_ALPHANUMERIC)
    );
    Ok(Json(json!({
        "remote_console": {"protocol": "vnc", "type": "novnc", "url": url}
    })))
}

/// The console's websocket: the ticket is checked before the upgrade, the node's stream
/// opened after it, and bytes pass both ways as binary messages until either side ends.
pub(crate) async fn websocket(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, NovaError> {
    let token = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .ok_or_else(|| NovaError::new(StatusCode::UNAUTHORIZED, "A console ticket is needed."))?;
    let compute = state.compute()?.clone();
    compute.console_server(&token)?;
    Ok(upgrade
        .protocols(["binary"])
        .on_upgrade(move |socket| async move {
            match compute.open_vnc(&token).await {
                Ok(stream) => relay(socket, stream).await,
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "cannot open a VNC console");
                }
            }
        })
        .into_response())
}

async fn relay(mut socket: WebSocket, stream: tokio::net::TcpStream) {
    let (mut from_node, mut to_node) = stream.into_split();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = from_node.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buffer[..n]);
                    if socket.send(Message::Binary(chunk)).await.is_err() {
                        break;
                    }
                }
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if to_node.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
