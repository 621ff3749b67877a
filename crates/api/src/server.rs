//! The HTTP server: plain or TLS (rustls) connections, header and body limits, and a
//! graceful shutdown that lets requests in flight finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::client_address::{ClientAddress, ClientAddresses};
use crate::slow_body::BodyPace;

/// Limits on what a client may send.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Request line plus headers; larger requests are refused by the HTTP parser.
    pub max_header_bytes: usize,
    /// Bodies of requests parsed in memory (JSON); streaming uploads set their own limits.
    pub max_body_bytes: usize,
    /// How long a client may take to send its headers (and, over TLS, to finish the
    /// handshake before them).
    pub header_timeout: Duration,
    /// How long requests in flight may run on after shutdown starts.
    pub shutdown_grace: Duration,
    /// Front proxies (load balancers) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How slowly a request body may arrive before it is cut off (408).
    pub body_pace: BodyPace,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            body_pace: BodyPace::default(),
            max_connections: 4096,
        }
    }
}

/// PEM files of a TLS certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot read TLS file {path}")]
    TlsRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no private key in {path}")]
    TlsNoKey { path: PathBuf },
    #[error("invalid TLS certificate or key")]
    TlsConfig(#[source] rustls::Error),
}

/// Builds the rustls acceptor for `files`.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| ServerError::TlsRead {
            path: path.clone(),
            source,
        })
    };
    let cert_pem = read(&files.certificate)?;
    let key_pem = read(&files.key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ServerError::TlsRead {
            path: files.certificate.clone(),
            source,
        })?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| ServerError::TlsRead {
            path: files.key.clone(),
            source,
        })?
        .ok_or_else(|| ServerError::TlsNoKey {
            path: files.key.clone(),
        })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(ServerError::TlsConfig)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(ServerError::TlsConfig)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits up
/// to `limits.shutdown_grace` for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    // Raised at shutdown: each connection then finishes the request in flight and closes.
    // (hyper-util's GracefulShutdown does not take connections that may be upgraded, as
    // the console's websocket is.)
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // `Content-Type`, `X-Object-Meta-Color`: as Swift, Keystone and Nova (all behind
        // Python's WSGI servers) write header names, and as some of their clients compare.
        .title_case_headers(true)
        // Room above the limit, so that a request somewhat over it is read whole and refused
        // with a proper 431 by the middleware instead of a dropped connection.
        .max_buf_size(limits.max_header_bytes.saturating_mul(4).max(8192));
    let trusted_proxies: Arc<[std::net::IpAddr]> = Arc::from(limits.trusted_proxies.as_slice());
    // A connection takes a place before it is accepted, so that past the bound clients
    // wait in the kernel's backlog instead of costing a task each.
    let place_count = limits.max_connections.max(1);
    let places = Arc::new(tokio::sync::Semaphore::new(place_count));
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => match place {
                Ok(place) => place,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Running out of descriptors or a connection reset before accept: keep
                // serving the others.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let addresses = ClientAddresses {
            peer,
            trusted_proxies: Arc::clone(&trusted_proxies),
        };
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: http::Request<hyper::body::Incoming>| {
                let client = ClientAddress(addresses.of(&request));
                request.extensions_mut().insert(client);
                request
            },
        ));
        let http = http.clone();
        match &tls {
            None => {
                let stopping = stopping.clone();
                tokio::spawn(async move {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    run_connection(conn.with_upgrades(), stopping, peer).await;
                    drop(place);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let stopping = stopping.clone();
                // The handshake comes before the headers and has the same deadline, so a
                // client that connects and stays silent cannot hold the connection forever.
                let deadline = limits.header_timeout;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(deadline, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    run_connection(conn.with_upgrades(), stopping, peer).await;
                    drop(place);
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    let _ = stop.send(true);
    // Every connection holds a place until it ends: all places back means all ended.
    let all_places = u32::try_from(place_count).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, places.acquire_many(all_places))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "requests still running at the end of the grace period");
    }
    Ok(())
}

/// Serves one connection until it ends, or, once `stopping` is raised, until it has
/// finished the request in flight.
async fn run_connection<I, S>(
    conn: http1::UpgradeableConnection<I, S>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        // Raised (or the server gone): finish what is in flight.
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
