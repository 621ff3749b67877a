//! Standard cloud images boot with nefos's config drive: a Debian 12 image with the real
//! cloud-init (`scripts/build-cloudinit-image`), run by a node agent with each config
//! drive layout. Slow (a full systemd boot under TCG), so it runs as a separate target of
//! `scripts/test`, after the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::vms::{Cloud, Node, forward, ssh_as, ssh_key, wait_for_console};
use nefos_node_api::{
    ConfigDriveLayout, EnsureVm, GuestConfig, NicSpec, PowerState, VmSpec, VmState,
};

const CLOUD_INIT_DONE: &str = "Cloud-init v. ";
const FINISHED: &str = " finished at ";
const TIMEOUT: Duration = Duration::from_secs(900);

fn cloudinit_image() -> PathBuf {
    let path = std::env::var_os("NEFOS_TEST_CLOUDINIT_IMAGE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/debian-cloudinit.raw"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no cloud-init image at {}: run scripts/build-cloudinit-image (scripts/test does)",
        path.display()
    );
    path
}

#[tokio::test]
#[ignore = "slow: scripts/test runs it on its own, after building the cloud-init image"]
async fn real_cloud_init_applies_both_config_drive_layouts() {
    let cloud = Cloud::with_image(&cloudinit_image()).await;
    let node = Node::start(&cloud, "node-ci").await;
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(keys.path());
    let vms = [
        (
            "ci-configdrive",
            ConfigDriveLayout::OpenStack,
            "DataSourceConfigDrive",
            1u8,
        ),
        (
            "ci-nocloud",
            ConfigDriveLayout::NoCloud,
            "DataSourceNoCloud",
            2u8,
        ),
    ];
    let disk_bytes = cloud.image.size + (1 << 30);
    for (name, layout, _, n) in vms {
        let user_data = format!("#!/bin/sh\necho CLOUDINIT-USERDATA-RAN-{name} > /dev/ttyS0\n");
        let spec = VmSpec {
            name: name.to_owned(),
            vcpus: 1,
            ram_mib: 768,
            disk_bytes,
            image: cloud.image.clone(),
            guest: GuestConfig {
                hostname: name.to_owned(),
                layout,
                admin_pass: Some("Cloud-Init-Pass-1".to_owned()),
                public_keys: BTreeMap::from([("default".to_owned(), public.clone())]),
                user_data: Some(base64::engine::general_purpose::STANDARD.encode(user_data)),
            },
            nics: vec![NicSpec::UserForward {
                mac: format!("52:54:00:c1:00:{n:02x}"),
                forward_tcp: vec![22],
            }],
            cpu_model: None,
        };
        let request = EnsureVm {
            generation: 1,
            spec,
            power: PowerState::Running,
        };
        let status = node.ensure_vm(name, &request).await.unwrap();
        assert_eq!(status.state, VmState::Running, "{status:?}");
    }
    for (name, _, datasource, _) in vms {
        let output = loop {
            let output = wait_for_console(&node, name, CLOUD_INIT_DONE, 1, TIMEOUT).await;
            if output.contains(FINISHED) {
                break output;
            }
            wait_for_console(&node, name, FINISHED, 1, TIMEOUT).await;
        };
        let finished = output.lines().find(|line| line.contains(FINISHED)).unwrap();
        assert!(finished.contains(datasource), "{name}: {finished}");
        assert!(
            output.contains(&format!("CLOUDINIT-USERDATA-RAN-{name}")),
            "{output}"
        );

        let port = forward(&node.rpc.vm_status(name).await.unwrap(), 22);
        // The key went to the image's default user, the hostname was set …
        assert_eq!(ssh_as("debian", &key, port, "hostname").trim(), name);
        // … the password too (a hash, not a locked account) …
        let shadow = ssh_as("debian", &key, port, "sudo -n getent shadow debian");
        let hash = shadow.split(':').nth(1).unwrap();
        assert!(hash.starts_with('$'), "{name}: password not set: {shadow}");
        // … and the root filesystem grew into the larger disk.
        let root = ssh_as("debian", &key, port, "findmnt -bno SIZE /");
        let root: u64 = root.trim().parse().unwrap();
        assert!(root > cloud.image.size, "{name}: / is {root} bytes");
    }
    for (generation, (name, ..)) in (2..).zip(vms) {
        node.rpc.destroy_vm(name, generation).await.unwrap();
    }
    assert!(node.qemu_pids().is_empty());
}
