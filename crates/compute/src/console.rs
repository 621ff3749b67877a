//! VNC consoles: a signed, expiring ticket for one server's console, and the connection
//! to that console on the server's node. A ticket names the server and its expiry and is
//! signed with a key derived from the control plane's own, so any `nefos serve` process
//! accepts the tickets of any other and no one else can make one; it is good for any
//! number of connections until it expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nefos_db::compute as q;
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;
use tokio::net::TcpStream;

use crate::{Compute, ComputeError};

/// How long a console ticket is good for.
pub const TICKET_LIFETIME_SECONDS: i64 = 600;

/// A console ticket and when it expires (µs since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTicket {
    pub token: String,
    pub expires_at: i64,
}

fn refused() -> ComputeError {
    ComputeError::not_found("The console ticket is unknown or has expired.")
}

impl Compute {
    /// A ticket for the VNC console of a server the caller may see; the server must run.
    pub async fn vnc_console(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<ConsoleTicket, ComputeError> {
        let server = self.server(caller, id).await?;
        let ready = server.node_id.is_some()
            && server.launched_at.is_some()
            && matches!(
                server.status(),
                "ACTIVE" | "PAUSED" | "REBOOT" | "HARD_REBOOT"
            );
        if !ready {
            return Err(ComputeError::conflict(format!(
                "Instance {id} is not ready"
            )));
        }
        let expires_at = now_micros() + TICKET_LIFETIME_SECONDS * 1_000_000;
        let claim = format!("{id}.{expires_at}");
        let signature = self.inner.nodes.console_key().sign(claim.as_bytes());
        Ok(ConsoleTicket {
            token: format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(claim),
                URL_SAFE_NO_PAD.encode(signature)
            ),
            expires_at,
        })
    }

    /// The server a ticket is for, if it is genuine and unexpired.
    pub fn console_server(&self, token: &str) -> Result<String, ComputeError> {
        let (claim, signature) = token.split_once('.').ok_or_else(refused)?;
        let claim = URL_SAFE_NO_PAD.decode(claim).map_err(|_| refused())?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| refused())?;
        if !self.inner.nodes.console_key().verify(&claim, &signature) {
            return Err(refused());
        }
        let claim = String::from_utf8(claim).map_err(|_| refused())?;
        let (server, expires_at) = claim.rsplit_once('.').ok_or_else(refused)?;
        let expires_at: i64 = expires_at.parse().map_err(|_| refused())?;
        if expires_at < now_micros() {
            return Err(refused());
        }
        Ok(server.to_owned())
    }

    /// A byte stream to the VNC server of the ticket's server, on its node.
    pub async fn open_vnc(&self, token: &str) -> Result<TcpStream, ComputeError> {
        let id = self.console_server(token)?;
        let server = q::get_server(self.db().pool(), &id)
            .await?
            .filter(|row| row.deleted_at.is_none())
            .ok_or_else(|| ComputeError::no_server(&id))?;
        let node = server
            .node_id
            .ok_or_else(|| ComputeError::conflict(format!("Instance {id} is not ready")))?;
        let client = self.nodes().client(&node).await?;
        client
            .open_vnc(&id)
            .await
            .map_err(|source| ComputeError::Rpc { node, source })
    }
}
