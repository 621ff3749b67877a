//! The QMP client against a scripted peer (ordering corner cases) and a real QEMU.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nefos_qmp::commands::{Cont, QueryStatus, QueryVersion, Quit, Stop, SystemReset};
use nefos_qmp::{Qmp, QmpError};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that answers like QEMU but sends an event before each reply, and answers the
/// second of two concurrent commands first.
async fn scripted_peer(listener: UnixListener) {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
        .await
        .unwrap();
    let caps: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(caps["execute"], "qmp_capabilities");
    let reply = format!("{{\"return\": {{}}, \"id\": {}}}\n", caps["id"]);
    write.write_all(reply.as_bytes()).await.unwrap();

    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    write
        .write_all(b"{\"event\": \"RESET\", \"data\": {\"guest\": false}, \"timestamp\": {}}\n")
        .await
        .unwrap();
    for (request, answer) in [(&second, "\"paused\""), (&first, "\"running\"")] {
        let line = format!(
            "{{\"return\": {{\"running\": {}, \"status\": {answer}}}, \"id\": {}}}\n",
            answer == "\"running\"",
            request["id"]
        );
        write.write_all(line.as_bytes()).await.unwrap();
    }
    let failing: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let line = format!(
        "{{\"error\": {{\"class\": \"DeviceNotActive\", \"desc\": \"no such thing\"}}, \"id\": {}}}\n",
        failing["id"]
    );
    write.write_all(line.as_bytes()).await.unwrap();
    // Then hang up with one command unanswered.
    let _ = lines.next_line().await;
}

#[tokio::test]
async fn replies_are_matched_by_id_and_events_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = tokio::spawn(scripted_peer(listener));

    let qmp = Qmp::connect(&path, TIMEOUT).await.unwrap();
    let mut events = qmp.events();
    let (a, b) = tokio::join!(qmp.execute(&QueryStatus {}), async {
        // Make sure the first command is written first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        qmp.execute(&QueryStatus {}).await
    });
    assert_eq!(a.unwrap().status, "running");
    assert_eq!(b.unwrap().status, "paused");
    let event = events.recv().await.unwrap();
    assert_eq!(event.name, "RESET");
    assert_eq!(event.data["guest"], false);

    match qmp.execute(&Stop {}).await {
        Err(QmpError::Command { class, desc, .. }) => {
            assert_eq!(class, "DeviceNotActive");
            assert_eq!(desc, "no such thing");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    match qmp.execute(&Cont {}).await {
        Err(QmpError::Disconnected) => {}
        other => panic!("expected a disconnection, got {other:?}"),
    }
    peer.await.unwrap();
    // Once the reader has stopped, commands fail at once.
    let started = Instant::now();
    assert!(matches!(
        qmp.execute(&Cont {}).await,
        Err(QmpError::Disconnected)
    ));
    assert!(started.elapsed() < TIMEOUT);
}

#[tokio::test]
async fn a_missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = Qmp::connect(&dir.path().join("absent.sock"), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(error, QmpError::Connect { .. }), "{error:?}");
}

struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "QEMU did not create its QMP socket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn drives_a_real_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qmp.sock");
    let mut qemu = Qemu(
        Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "pc,accel=tcg",
                "-nodefaults",
                "-display",
                "none",
            ])
            .args(["-m", "32", "-S"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 is installed by scripts/setup"),
    );
    wait_for_socket(&socket).await;

    let qmp = Qmp::connect(&socket, TIMEOUT).await.unwrap();
    let version = qmp.execute(&QueryVersion {}).await.unwrap();
    assert!(version.qemu.major >= 10, "{version:?}");
    let status = qmp.execute(&QueryStatus {}).await.unwrap();
    assert_eq!(status.status, "prelaunch");
    assert!(!status.running);

    qmp.execute(&Cont {}).await.unwrap();
    assert!(qmp.execute(&QueryStatus {}).await.unwrap().running);

    let mut events = qmp.events();
    qmp.execute(&SystemReset {}).await.unwrap();
    let event = tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.name, "RESET");

    qmp.execute(&Stop {}).await.unwrap();
    assert_eq!(qmp.execute(&QueryStatus {}).await.unwrap().status, "paused");

    let error = qmp.call("no-such-command", None).await.unwrap_err();
    assert!(
        matches!(&error, QmpError::Command { class, .. } if class == "CommandNotFound"),
        "{error:?}"
    );

    // `quit` may or may not get its reply out before QEMU exits.
    match qmp.execute(&Quit {}).await {
        Ok(_) | Err(QmpError::Disconnected) => {}
        Err(other) => panic!("quit failed: {other:?}"),
    }
    let status = tokio::task::spawn_blocking(move || qemu.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
