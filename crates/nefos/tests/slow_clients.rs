//! Slow clients cannot hold the server: a body sent a byte at a time is cut off, and past
//! `max_connections` new clients wait instead of each costing the server a task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `nefos serve` with tight limits for slow clients.
fn serve(dir: &std::path::Path) -> NefosProcess {
    let (port, internal) = (free_port(), free_port());
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         internal_listen = \"127.0.0.1:{internal}\"\n\
         data_dir = \"{}\"\n\
         [http]\n\
         body_idle_timeout_seconds = 2\n\
         body_min_bytes_per_second = 100\n\
         body_grace_seconds = 2\n\
         max_connections = 4\n",
        dir.join("data").display()
    );
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let path = dir.join("nefos.toml");
    std::fs::write(&path, config).unwrap();
    let args = vec![
        "serve".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
    ];
    NefosProcess::spawn(&binary(), &args, &format!("http://127.0.0.1:{port}"))
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_body_trickling_in_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let mut trickles = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(address(&server.url)).await.unwrap();
        stream
            .write_all(
                b"POST /identity/v3/auth/tokens HTTP/1.1\r\nHost: x\r\n\
                  Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
            )
            .await
            .unwrap();
        trickles.push(stream);
    }
    let started = Instant::now();
    let mut answers = Vec::new();
    for mut stream in trickles {
        let answer = tokio::spawn(async move {
            let mut reply = Vec::new();
            loop {
                // A byte a second, until the server answers and closes.
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
                let mut buf = [0u8; 4096];
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
                if started.elapsed() > Duration::from_secs(20) {
                    break;
                }
            }
            String::from_utf8_lossy(&reply).into_owned()
        });
        answers.push(answer);
    }
    for answer in answers {
        let reply = answer.await.unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 4"),
            "a trickling body must get a 4xx: {reply:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the trickles were cut off after {:?}",
        started.elapsed()
    );
    // The server still serves.
    let health = http()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn past_max_connections_new_clients_wait() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    // Four connections that never finish their headers hold every place.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(address(&server.url)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let waiting = quick.get(format!("{}/healthz", server.url)).send().await;
    assert!(
        waiting.is_err(),
        "a fifth connection must wait while four are held: {waiting:?}"
    );
    drop(held);
    let served = http()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
}
