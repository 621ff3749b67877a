//! Live migration between two node agents, driven over their RPC API as the control
//! plane drives it (issue: live migration). The guest writes to its disk and memory all
//! the while; it must arrive with its memory (its tick counter goes on, it does not
//! boot again), its disk (what it wrote before the move reads back the same) and its
//! connections working, and leave nothing behind where it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::vms::{Cloud, MARKER, Node, console, forward, ssh, ssh_key, wait_for_boots};
use nefos_node_api::{
    AbortIncoming, CancelMigration, ConfigDriveLayout, EnsureVm, FinishIncoming, GuestConfig,
    IncomingVm, MigrateVm, MigrationLimits, MigrationState, MigrationStatus, NicSpec, PowerState,
    Secret, VmSpec, VmState, VmStatus,
};
use nefos_test_utils::ticks;

const VM: &str = "6a1e0f2c-0000-4000-8000-00000000a1a1";

/// Writes its disk (1 MiB blocks past the image, synced) and its memory (a tmpfs file)
/// without pause.
fn workload() -> String {
    format!(
        "#!/bin/sh
(n=0; while :; do
  dd if=/dev/urandom of=/dev/vda bs=1M count=1 seek=$((700 + n % 64)) conv=fsync 2>/dev/null
  dd if=/dev/urandom of=/dev/shm/dirty bs=1M count=16 2>/dev/null
  n=$((n + 1))
done) &
{}
echo WORKLOAD-STARTED > /dev/ttyS0
",
        nefos_test_utils::CONSOLE_PULSE
    )
}

/// The longest a moved guest may seem to stand still to the host (QEMU's pause at the
/// switch and TCG's warm-up at the destination; well under a second here, with room for
/// a loaded CI machine).
const GAP_GOAL: Duration = Duration::from_secs(3);

fn spec(cloud: &Cloud, public_key: &str) -> VmSpec {
    VmSpec {
        name: "traveller".to_owned(),
        vcpus: 1,
        ram_mib: 192,
        disk_bytes: 1 << 30,
        image: cloud.image.clone(),
        guest: GuestConfig {
            hostname: "traveller".to_owned(),
            layout: ConfigDriveLayout::OpenStack,
            admin_pass: None,
            public_keys: BTreeMap::from([("default".to_owned(), public_key.to_owned())]),
            user_data: Some(base64::engine::general_purpose::STANDARD.encode(workload())),
        },
        nics: vec![NicSpec::UserForward {
            mac: "52:54:00:6d:69:01".to_owned(),
            forward_tcp: vec![22],
        }],
        cpu_model: None,
    }
}

/// Moves the VM from `from` to `to` as the control plane's saga does; the source's
/// final status.
async fn migrate(
    cloud: &Cloud,
    from: &Node,
    to: &Node,
    spec: &VmSpec,
    generation: u64,
) -> (MigrationStatus, VmStatus, Duration) {
    let secret = Secret::generate();
    let console_of = |node: &Node| node.dir.path().join("vms").join(VM).join("console.log");
    let gap = tokio::spawn(nefos_test_utils::console_gap(
        console_of(from),
        console_of(to),
        Duration::from_secs(300),
    ));
    let definition = from.rpc.vm_definition(VM).await.unwrap();
    assert_eq!(&definition.spec, spec);
    let incoming = IncomingVm {
        generation,
        spec: definition.spec,
        launch: definition.launch,
        power: PowerState::Running,
        secret: secret.expose().to_owned(),
    };
    let waiting = cloud
        .nodes
        .prepare_incoming(&to.id, VM, &incoming)
        .await
        .unwrap();
    assert_eq!(waiting.state, VmState::Paused, "{waiting:?}");
    // Again: a retry finds it ready.
    cloud
        .nodes
        .prepare_incoming(&to.id, VM, &incoming)
        .await
        .unwrap();
    let request = MigrateVm {
        generation: generation + 1,
        destination: to.url(),
        secret: secret.expose().to_owned(),
        limits: MigrationLimits::default(),
    };
    from.rpc.migrate_vm(VM, &request).await.unwrap();
    let status = wait_migration(from, Duration::from_secs(300)).await;
    assert_eq!(
        status.state,
        MigrationState::Completed,
        "{status:?}\nsource console:\n{}",
        console(from, VM).await
    );
    // The same call again is the same migration, not another.
    let again = from.rpc.migrate_vm(VM, &request).await.unwrap();
    assert_eq!(again.state, MigrationState::Completed);
    let arrived = to
        .rpc
        .finish_incoming(
            VM,
            &FinishIncoming {
                generation: generation + 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(arrived.state, VmState::Running, "{arrived:?}");
    // Once the guest was let run here, its reception cannot be undone.
    let refused = to
        .rpc
        .abort_incoming(
            VM,
            &AbortIncoming {
                generation: generation + 4,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409), "{refused}");
    let gap = gap
        .await
        .unwrap()
        .expect("the guest printed nothing at its destination");
    assert!(gap < GAP_GOAL, "the guest stood still for {gap:?}");
    from.rpc.destroy_vm(VM, generation + 3).await.unwrap();
    (status, arrived, gap)
}

async fn wait_migration(node: &Node, within: Duration) -> MigrationStatus {
    let started = Instant::now();
    loop {
        let status = node.rpc.migration_status(VM).await.unwrap();
        if status.state.is_over() {
            return status;
        }
        assert!(started.elapsed() < within, "migration not over: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes 4 MiB of random bytes at `offset_mib` of the guest's disk; their SHA-256.
fn write_marker(key: &Path, port: u16, offset_mib: u64) -> String {
    ssh(
        key,
        port,
        &format!(
            "dd if=/dev/urandom of=/dev/vda bs=1M count=4 seek={offset_mib} conv=fsync \
             2>/dev/null && dd if=/dev/vda bs=1M count=4 skip={offset_mib} 2>/dev/null | \
             sha256sum"
        ),
    )
}

fn read_marker(key: &Path, port: u16, offset_mib: u64) -> String {
    ssh(
        key,
        port,
        &format!(
            "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=1M count=4 \
             skip={offset_mib} iflag=direct 2>/dev/null | sha256sum"
        ),
    )
}

#[tokio::test]
async fn a_busy_vm_moves_between_nodes_and_back_with_its_memory_and_disk() {
    let cloud = Cloud::start().await;
    let a = Node::start(&cloud, "node-a").await;
    let b = Node::start(&cloud, "node-b").await;
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(keys.path());
    let spec = spec(&cloud, &public);
    let started = a
        .ensure_vm(
            VM,
            &EnsureVm {
                generation: 1,
                spec: spec.clone(),
                power: PowerState::Running,
            },
        )
        .await
        .unwrap();
    wait_for_boots(&a, VM, 1).await;
    let mut port = forward(&started, 22);

    let mut generation = 10;
    let (mut here, mut there) = (&a, &b);
    let mut last_tick = 0;
    // Ten moves: to the other node and back, five times.
    for trip in 0..10u64 {
        let offset = 100 + trip * 8;
        let written = write_marker(&key, port, offset);
        let before = ticks(&console(here, VM).await);
        let (status, arrived, gap) = migrate(&cloud, here, there, &spec, generation).await;
        generation += 10;
        eprintln!(
            "move {trip}: {} ms in all, {:?} ms paused (QEMU), {gap:?} standing still (host), \
             {} bytes of memory, {} of disk",
            status.total_ms.unwrap_or_default(),
            status.downtime_ms,
            status.memory.processed_bytes,
            status.disk.processed_bytes
        );
        assert!(status.downtime_ms.is_some_and(|ms| ms < 1000), "{status:?}");
        // The guest goes on where it was: its ticks continue, it never boots again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = console(there, VM).await;
        let after_ticks = ticks(&after);
        assert!(!after.contains(MARKER), "the guest booted again:\n{after}");
        let first = *after_ticks.first().expect("no ticks after the move");
        let last_before = *before.last().unwrap();
        assert!(
            first > last_before && first <= last_before + 30,
            "ticks before {last_before}, after from {first}"
        );
        assert!(first > last_tick);
        last_tick = *after_ticks.last().unwrap();
        // Its disk: what it wrote before the move reads back the same.
        port = forward(&arrived, 22);
        assert_eq!(read_marker(&key, port, offset), written, "move {trip}");
        // Nothing is left where it was.
        assert!(here.vm_dirs().is_empty(), "{:?}", here.vm_dirs());
        assert!(here.qemu_pids().is_empty());
        std::mem::swap(&mut here, &mut there);
    }
    let status = here.rpc.vm_status(VM).await.unwrap();
    assert_eq!(status.state, VmState::Running);
    assert_eq!(there.qemu_pids(), Vec::<u32>::new());

    // A migration that completed but whose guest never ran at the destination is undone:
    // the guest runs on where it was, the destination's copy goes.
    let secret = Secret::generate();
    let incoming = IncomingVm {
        generation,
        spec: spec.clone(),
        launch: here.rpc.vm_definition(VM).await.unwrap().launch,
        power: PowerState::Running,
        secret: secret.expose().to_owned(),
    };
    cloud
        .nodes
        .prepare_incoming(&there.id, VM, &incoming)
        .await
        .unwrap();
    // A channel with the wrong secret is refused.
    let wrong = nefos_node_api::open_migration_channel(
        &there.url(),
        VM,
        nefos_node_api::MigrationChannel::Memory,
        &Secret::generate(),
    )
    .await
    .unwrap_err();
    assert_eq!(wrong.status().map(|s| s.as_u16()), Some(401), "{wrong}");
    let request = MigrateVm {
        generation: generation + 1,
        destination: there.url(),
        secret: secret.expose().to_owned(),
        limits: MigrationLimits::default(),
    };
    here.rpc.migrate_vm(VM, &request).await.unwrap();
    assert_eq!(
        wait_migration(here, Duration::from_secs(300)).await.state,
        MigrationState::Completed
    );
    let before = *ticks(&console(here, VM).await).last().unwrap();
    let resumed = here
        .rpc
        .cancel_migration(
            VM,
            &CancelMigration {
                generation: generation + 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(resumed.state, VmState::Running, "{resumed:?}");
    // The destination's copy never ran: its reception is undone.
    there
        .rpc
        .abort_incoming(
            VM,
            &AbortIncoming {
                generation: generation + 2,
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ticks(&console(here, VM).await);
    assert!(*after.last().unwrap() > before, "the guest did not go on");
    assert_eq!(
        here.rpc.migration_status(VM).await.unwrap().state,
        MigrationState::Cancelled
    );
    assert!(there.vm_dirs().is_empty() && there.qemu_pids().is_empty());
    let port = forward(&resumed, 22);
    assert_eq!(ssh(&key, port, "echo alive").trim(), "alive");

    // A migration cancelled while under way, its destination made ready again.
    generation += 10;
    let incoming = IncomingVm {
        generation,
        ..incoming
    };
    cloud
        .nodes
        .prepare_incoming(&there.id, VM, &incoming)
        .await
        .unwrap();
    let request = MigrateVm {
        generation: generation + 1,
        // A bandwidth that keeps it under way long enough to be cancelled.
        limits: MigrationLimits {
            max_bandwidth: 1 << 20,
            ..MigrationLimits::default()
        },
        ..request
    };
    here.rpc.migrate_vm(VM, &request).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cancelled = here
        .rpc
        .cancel_migration(
            VM,
            &CancelMigration {
                generation: generation + 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(cancelled.state, VmState::Running, "{cancelled:?}");
    let status = here.rpc.migration_status(VM).await.unwrap();
    assert_eq!(status.state, MigrationState::Cancelled, "{status:?}");
    there.rpc.destroy_vm(VM, generation + 2).await.unwrap();
    assert_eq!(ssh(&key, port, "echo alive").trim(), "alive");
    assert!(there.vm_dirs().is_empty() && there.qemu_pids().is_empty());
    let files: Vec<String> = std::fs::read_dir(here.dir.path().join("vms").join(VM))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with(".sock") && f.starts_with("migrate-")),
        "{files:?}"
    );
}
