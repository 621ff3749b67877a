//! A VM's NICs changed while it may run: the record takes the new list (a cold start uses
//! it), and a running QEMU gets the ports' NICs it lacks plugged in (`netdev_add` of the
//! port's tap, then `device_add` of a virtio NIC in a slot of its own) and those it should
//! not have unplugged (`device_del`, which the guest acknowledges; then `netdev_del`).
//! The set of NIC devices QEMU reports is the truth compared against, so a call cut short
//! and repeated does only what is left.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nefos_node_api::{NicSpec, SetNics, VmStatus};
use nefos_qmp::commands::{DeviceAdd, DeviceDel, NetdevAdd, NetdevDel, QomList};
use serde_json::json;

use super::record::{Admission, Operation};
use super::{Launched, VmError, VmManager, check_taps, execute, save, slots_for, validate};
use crate::qemu::{self, NIC_DEVICE_PREFIX, NicNames, VmPaths};

/// How long a guest has to let go of an unplugged NIC.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(20);

impl VmManager {
    pub async fn set_nics(&self, id: &str, request: &SetNics) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::SetNics)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                // The ports' NICs are the control plane's to set; a user-mode NIC (a
                // development node's) stays.
                if request
                    .nics
                    .iter()
                    .any(|n| !matches!(n, NicSpec::Port { .. }))
                {
                    return Err(VmError::Invalid {
                        reason: "only ports' NICs are set".to_owned(),
                    });
                }
                let mut spec = record.spec.clone();
                spec.nics = record
                    .spec
                    .nics
                    .iter()
                    .filter(|n| matches!(n, NicSpec::UserForward { .. }))
                    .chain(&request.nics)
                    .cloned()
                    .collect();
                validate::spec(&spec)?;
                slots_for(&spec.nics, &BTreeMap::new())?;
                record.spec = spec;
                record.generation = request.generation;
                record.operation = Operation::SetNics;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        if qemu::running_pid(&paths).is_some() {
            check_taps(&record.spec).await?;
            plug(&paths, &record.spec.nics).await?;
        }
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(vm = id, nics = record.spec.nics.len(), "NICs set");
        self.status_of(&paths, &record).await
    }
}

/// Makes the running QEMU's port NICs those of `nics`, and records what it runs with.
async fn plug(paths: &VmPaths, nics: &[NicSpec]) -> Result<(), VmError> {
    let mut launched = read_launched(paths).await?;
    let present = nic_devices(paths).await?;
    let wanted: BTreeMap<String, (&str, &str, u32)> = nics
        .iter()
        .filter_map(|nic| match nic {
            NicSpec::Port { port_id, mac, mtu } => Some((
                NicNames::of(port_id).device,
                (port_id.as_str(), mac.as_str(), *mtu),
            )),
            NicSpec::UserForward { .. } => None,
        })
        .collect();
    for device in present.iter().filter(|d| !wanted.contains_key(*d)) {
        unplug(paths, device).await?;
    }
    let slots = slots_for(nics, &launched.nic_slots)?;
    for (device, (port_id, mac, mtu)) in &wanted {
        if present.contains(device) {
            continue;
        }
        let names = NicNames::of(port_id);
        let slot = slots.get(*port_id).copied().unwrap_or(qemu::FIRST_NIC_SLOT);
        // A backend left by an attempt cut short (no device uses it) goes first.
        let _ = execute(
            paths,
            &NetdevDel {
                id: names.netdev.clone(),
            },
        )
        .await;
        execute(
            paths,
            &NetdevAdd(json!({
                "type": "tap", "id": names.netdev,
                "ifname": nefos_node_api::tap_name(port_id),
                "script": "no", "downscript": "no", "vhost": false,
            })),
        )
        .await?;
        let device = execute(
            paths,
            &DeviceAdd(json!({
                "driver": "virtio-net-pci", "id": names.device, "netdev": names.netdev,
                "mac": mac, "host_mtu": mtu, "bus": qemu::root_port(slot),
            })),
        )
        .await;
        if let Err(error) = device {
            // No NIC uses the backend: it must not keep the tap open.
            let _ = execute(paths, &NetdevDel { id: names.netdev }).await;
            return Err(error);
        }
        tracing::info!(device = %names.device, slot, "NIC plugged in");
    }
    // Kept in the order of the spec: a restore of a saved state starts QEMU with them.
    launched.nics = nics.to_vec();
    launched.nic_slots = slots;
    write_launched(paths, &launched).await
}

/// Asks the guest to release `device`, waits until QEMU has removed it, then removes its
/// backend.
async fn unplug(paths: &VmPaths, device: &str) -> Result<(), VmError> {
    execute(
        paths,
        &DeviceDel {
            id: device.to_owned(),
        },
    )
    .await?;
    let started = Instant::now();
    while nic_devices(paths).await?.iter().any(|d| d == device) {
        if started.elapsed() > UNPLUG_TIMEOUT {
            return Err(VmError::UnplugTimeout {
                device: device.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let netdev = device.replacen(NIC_DEVICE_PREFIX, "net-", 1);
    execute(paths, &NetdevDel { id: netdev }).await?;
    tracing::info!(device, "NIC unplugged");
    Ok(())
}

/// The ids of the ports' NIC devices QEMU has.
async fn nic_devices(paths: &VmPaths) -> Result<Vec<String>, VmError> {
    let children = execute(
        paths,
        &QomList {
            path: "/machine/peripheral".to_owned(),
        },
    )
    .await?;
    Ok(children
        .into_iter()
        .filter(|child| {
            child.kind.starts_with("child<") && child.name.starts_with(NIC_DEVICE_PREFIX)
        })
        .map(|child| child.name)
        .collect())
}

pub(super) async fn read_launched(paths: &VmPaths) -> Result<Launched, VmError> {
    let path = paths.launched();
    let bytes = tokio::fs::read(&path).await.map_err(|source| VmError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|error| VmError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
    })
}

async fn write_launched(paths: &VmPaths, launched: &Launched) -> Result<(), VmError> {
    let path = paths.launched();
    let bytes = serde_json::to_vec(launched).map_err(|error| VmError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
    })?;
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|source| VmError::Io { path, source })
}
