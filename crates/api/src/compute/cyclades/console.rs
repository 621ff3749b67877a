//! Cyclades' VNC consoles, as Synnefo's vncauthproxy gives them: a port of its own on the
//! control plane's public host, open for one connection within the console ticket's
//! lifetime, where a VNC client authenticates with a one-time password (RFB's VNC
//! authentication) and is then joined to the server's VNC on its node.
//!
//! The proxy speaks RFB's handshake as the server to the client (version, VNC auth) and
//! as the client to the node's QEMU (version, no auth: only the control plane reaches
//! it); after both, the client's `ClientInit` and everything else pass through
//! untouched, since those messages are the same in every RFB 3.x version.

use std::time::Duration;

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit};
use nefos_compute::{Compute, TICKET_LIFETIME_SECONDS};
use nefos_compute_api::cyclades as c;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Cyclades;
use crate::ApiState;
use crate::compute::NovaError;

/// RFB's security types.
const SECURITY_NONE: u8 = 1;
const SECURITY_VNC_AUTH: u8 = 2;
/// How long a handshake step may take before the connection is dropped.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a console's port waits for its client.
const ACCEPT_WITHIN: Duration = Duration::from_secs(60);
/// Consoles (a waiting port, then a session of two sockets) one process keeps open at
/// once: a caller looping on the action must not use up the process's descriptors.
static OPEN_PORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(64);

/// Opens a console port for server `id`; what the client needs to connect.
pub(super) async fn open(
    state: &ApiState,
    cyclades: &Cyclades,
    id: &str,
    kind: &str,
) -> Result<c::Console, NovaError> {
    let compute = state.compute()?.clone();
    let ticket = compute.vnc_console(&cyclades.caller, id).await?;
    let Ok(port_permit) = OPEN_PORTS.try_acquire() else {
        return Err(NovaError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "Too many consoles are open; try again in a minute.",
        ));
    };
    let host = public_host(state.public_url());
    let listener = TcpListener::bind((host.as_str(), 0))
        .await
        .map_err(|error| console_failure(&error))?;
    let port = listener
        .local_addr()
        .map_err(|error| console_failure(&error))?
        .port();
    let password: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    let secret = password.clone();
    tokio::spawn(async move {
        let within = Duration::from_secs(u64::try_from(TICKET_LIFETIME_SECONDS).unwrap_or(60))
            .min(ACCEPT_WITHIN);
        let accepted = tokio::time::timeout(within, listener.accept()).await;
        // One client per console: the port closes once it is taken, or after a minute.
        // The permit lives as long as the session, whose two sockets it stands for.
        drop(listener);
        let Ok(Ok((client, _))) = accepted else {
            return;
        };
        let _session = port_permit;
        if let Err(reason) = serve(client, &secret, &compute, &ticket.token).await {
            tracing::info!(%reason, "a VNC console ended");
        }
    });
    Ok(c::Console {
        console_type: kind.to_owned(),
        host,
        port,
        password,
    })
}

fn console_failure(error: &std::io::Error) -> NovaError {
    tracing::warn!(%error, "cannot open a console port");
    NovaError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "No console port could be opened.",
    )
}

/// The host of the cloud's public URL, where console ports listen too.
fn public_host(public_url: &str) -> String {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed).to_owned();
    }
    authority.split(':').next().unwrap_or(authority).to_owned()
}

/// Authenticates the client, opens the node's VNC, and joins the two.
async fn serve(
    mut client: TcpStream,
    password: &str,
    compute: &Compute,
    token: &str,
) -> Result<(), String> {
    let step = |what: &'static str| move |_| format!("{what} took too long");
    tokio::time::timeout(STEP_TIMEOUT, authenticate(&mut client, password))
        .await
        .map_err(step("the client's authentication"))??;
    let mut node = compute
        .open_vnc(token)
        .await
        .map_err(|error| crate::error_chain(&error))?;
    tokio::time::timeout(STEP_TIMEOUT, greet_node(&mut node))
        .await
        .map_err(step("the node's handshake"))??;
    tokio::io::copy_bidirectional(&mut client, &mut node)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// RFB's server side up to a successful VNC authentication.
async fn authenticate(client: &mut TcpStream, password: &str) -> Result<(), String> {
    let io = |error: std::io::Error| error.to_string();
    client.write_all(b"RFB 003.008\n").await.map_err(io)?;
    let mut version = [0u8; 12];
    client.read_exact(&mut version).await.map_err(io)?;
    // Versions other than 3.7 and 3.8 are 3.3's handshake (RFC 6143 §7.1.1).
    let minor = match &version {
        b"RFB 003.007\n" => 7,
        b"RFB 003.008\n" => 8,
        other if other.starts_with(b"RFB 003.") => 3,
        other => {
            return Err(format!(
                "unsupported RFB version {:?}",
                String::from_utf8_lossy(other)
            ));
        }
    };
    if minor == 3 {
        // 3.3: the server names the one security type.
        client
            .write_all(&u32::from(SECURITY_VNC_AUTH).to_be_bytes())
            .await
            .map_err(io)?;
    } else {
        client
            .write_all(&[1, SECURITY_VNC_AUTH])
            .await
            .map_err(io)?;
        let mut chosen = [0u8; 1];
        client.read_exact(&mut chosen).await.map_err(io)?;
        if chosen[0] != SECURITY_VNC_AUTH {
            return Err(format!("the client chose security type {}", chosen[0]));
        }
    }
    let challenge: [u8; 16] = rand::thread_rng().r#gen();
    client.write_all(&challenge).await.map_err(io)?;
    let mut response = [0u8; 16];
    client.read_exact(&mut response).await.map_err(io)?;
    let expected = vnc_auth_response(password, &challenge);
    let matches = expected
        .iter()
        .zip(response.iter())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0;
    if !matches {
        let mut failed = 1u32.to_be_bytes().to_vec();
        if minor == 8 {
            let reason = b"Authentication failed";
            failed.extend_from_slice(&u32::try_from(reason.len()).unwrap_or(0).to_be_bytes());
            failed.extend_from_slice(reason);
        }
        client.write_all(&failed).await.map_err(io)?;
        return Err("wrong password".to_owned());
    }
    client.write_all(&0u32.to_be_bytes()).await.map_err(io)
}

/// RFB's client side with the node's QEMU, which asks for no authentication.
async fn greet_node(node: &mut TcpStream) -> Result<(), String> {
    let io = |error: std::io::Error| error.to_string();
    let mut version = [0u8; 12];
    node.read_exact(&mut version).await.map_err(io)?;
    node.write_all(b"RFB 003.008\n").await.map_err(io)?;
    let mut count = [0u8; 1];
    node.read_exact(&mut count).await.map_err(io)?;
    let mut types = vec![0u8; usize::from(count[0])];
    node.read_exact(&mut types).await.map_err(io)?;
    if !types.contains(&SECURITY_NONE) {
        return Err(format!("the node's VNC offers {types:?}, not None"));
    }
    node.write_all(&[SECURITY_NONE]).await.map_err(io)?;
    let mut result = [0u8; 4];
    node.read_exact(&mut result).await.map_err(io)?;
    if result != [0; 4] {
        return Err("the node's VNC refused the handshake".to_owned());
    }
    Ok(())
}

/// What a client answers to `challenge` knowing `password`: the challenge encrypted with
/// DES, keyed by the password's first 8 bytes (zero-padded) with each byte's bits
/// reversed, as RFB's VNC authentication defines it.
pub(crate) fn vnc_auth_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (slot, byte) in key.iter_mut().zip(password.bytes()) {
        *slot = byte.reverse_bits();
    }
    let cipher = Des::new(&key.into());
    let mut response = *challenge;
    for block in response.chunks_exact_mut(8) {
        cipher.encrypt_block(block.into());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_hosts_come_from_the_public_url() {
        assert_eq!(public_host("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(
            public_host("https://cloud.example.org/"),
            "cloud.example.org"
        );
        assert_eq!(public_host("http://[::1]:8080/x"), "::1");
    }

    /// The DES key is the password with each byte's bits reversed: the answer for
    /// "password" to a zero challenge, as `openssl enc -des-ecb -nopad` gives it with the
    /// key 0e86ceceeef64e26.
    #[test]
    fn vnc_auth_encrypts_the_challenge_with_the_reversed_key() {
        let challenge = [0u8; 16];
        let response = vnc_auth_response("password", &challenge);
        assert_eq!(hex::encode(response), "ff97502e9422f089ff97502e9422f089");
        // The key is the password's first 8 bytes only.
        assert_eq!(response, vnc_auth_response("password-longer", &challenge));
    }
}
