//! Config drives (docs/design.md §5): what a guest learns at boot, as an ISO 9660 image in
//! either layout cloud-init reads — OpenStack's (`config-2`) or NoCloud (`cidata`).

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nefos_node_api::{ConfigDriveLayout, GuestConfig, NicSpec};
use serde_json::json;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigDriveError {
    #[error("user_data is not valid base64")]
    UserData(#[source] base64::DecodeError),
    #[error("cannot write the config drive's files in {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot run genisoimage")]
    Spawn(#[source] io::Error),
    #[error("genisoimage failed: {stderr}")]
    Genisoimage { stderr: String },
}

/// The files of a config drive, as (path inside the drive, content).
pub fn files(
    vm_id: &str,
    name: &str,
    guest: &GuestConfig,
    nics: &[NicSpec],
) -> Result<Vec<(String, Vec<u8>)>, ConfigDriveError> {
    let user_data = guest
        .user_data
        .as_deref()
        .map(|data| STANDARD.decode(data.trim()))
        .transpose()
        .map_err(ConfigDriveError::UserData)?;
    let macs: Vec<&str> = nics.iter().map(NicSpec::mac).collect();
    let mut files = Vec::new();
    match guest.layout {
        ConfigDriveLayout::OpenStack => {
            let mut meta = json!({
                "uuid": vm_id,
                "name": name,
                "hostname": guest.hostname,
                "launch_index": 0,
                "availability_zone": "nova",
            });
            if let Some(pass) = &guest.admin_pass {
                meta["admin_pass"] = json!(pass);
            }
            if !guest.public_keys.is_empty() {
                meta["public_keys"] = json!(guest.public_keys);
            }
            // A port's link names its tap and the port (`vif_id`, as Nova's do) and
            // carries its network's MTU; guests take their addresses by DHCP.
            let links: Vec<_> = nics
                .iter()
                .enumerate()
                .map(|(i, nic)| match nic {
                    NicSpec::Port { port_id, mac, mtu } => json!({
                        "id": nefos_node_api::tap_name(port_id), "vif_id": port_id,
                        "type": "phy", "ethernet_mac_address": mac, "mtu": mtu,
                    }),
                    NicSpec::UserForward { mac, .. } => json!({
                        "id": format!("tap{i}"), "type": "phy",
                        "ethernet_mac_address": mac, "mtu": 1500,
                    }),
                })
                .collect();
            let networks: Vec<_> = links
                .iter()
                .enumerate()
                .map(|(i, link)| {
                    json!({"id": format!("network{i}"), "type": "ipv4_dhcp", "link": link["id"]})
                })
                .collect();
            let network = json!({"links": links, "networks": networks, "services": []});
            files.push(("openstack/latest/meta_data.json".to_owned(), pretty(&meta)));
            files.push((
                "openstack/latest/network_data.json".to_owned(),
                pretty(&network),
            ));
            if let Some(data) = user_data {
                files.push(("openstack/latest/user_data".to_owned(), data));
            }
            // cloud-init ignores `admin_pass`; it takes the password from vendor data.
            if let Some(pass) = &guest.admin_pass {
                let vendor = json!({ "cloud-init": password_cloud_config(pass) });
                files.push((
                    "openstack/latest/vendor_data.json".to_owned(),
                    pretty(&vendor),
                ));
            }
        }
        ConfigDriveLayout::NoCloud => {
            let mut meta = format!(
                "instance-id: {}\nlocal-hostname: {}\n",
                yaml_str(vm_id),
                yaml_str(&guest.hostname)
            );
            if !guest.public_keys.is_empty() {
                meta.push_str("public-keys:\n");
                for key in guest.public_keys.values() {
                    meta.push_str(&format!("  - {}\n", yaml_str(key)));
                }
            }
            files.push(("meta-data".to_owned(), meta.into_bytes()));
            // cloud-init's NoCloud wants a user-data file even when there is nothing in it.
            files.push((
                "user-data".to_owned(),
                user_data.unwrap_or_else(|| b"#cloud-config\n{}\n".to_vec()),
            ));
            if let Some(pass) = &guest.admin_pass {
                files.push((
                    "vendor-data".to_owned(),
                    password_cloud_config(pass).into_bytes(),
                ));
            }
            let mut network = String::from("version: 2\nethernets:\n");
            for (i, mac) in macs.iter().enumerate() {
                network.push_str(&format!(
                    "  nic{i}:\n    match:\n      macaddress: {}\n    dhcp4: true\n",
                    yaml_str(mac)
                ));
            }
            files.push(("network-config".to_owned(), network.into_bytes()));
        }
    }
    Ok(files)
}

/// Cloud-config that sets the default user's password and lets it log in over SSH.
fn password_cloud_config(pass: &str) -> String {
    format!(
        "#cloud-config\npassword: {}\nchpasswd: {{ expire: false }}\nssh_pwauth: true\n",
        yaml_str(pass)
    )
}

/// A YAML scalar for `text`: plain when YAML would read it back unchanged as a string
/// (what simple guest-side parsers expect), double-quoted otherwise.
fn yaml_str(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || " -._:/+=@".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !["true", "false", "yes", "no", "on", "off", "null", "~"]
            .contains(&text.to_ascii_lowercase().as_str())
        && text.parse::<f64>().is_err()
        // YAML 1.1 reads `52:54:00:…` as a base-60 number.
        && !(text.contains(':') && text.starts_with(|c: char| c.is_ascii_digit()));
    if plain {
        text.to_owned()
    } else {
        // JSON strings are valid YAML double-quoted scalars.
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

fn pretty(value: &serde_json::Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Writes the drive's files into a scratch directory next to `output` and makes the ISO.
pub async fn build(
    output: &Path,
    layout: ConfigDriveLayout,
    files: &[(String, Vec<u8>)],
) -> Result<(), ConfigDriveError> {
    let parent = output.parent().unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".config-drive")
        .tempdir_in(parent)
        .map_err(|source| ConfigDriveError::Io {
            path: parent.to_owned(),
            source,
        })?;
    for (name, content) in files {
        let path = scratch.path().join(name);
        let write = || -> io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, content)
        };
        write().map_err(|source| ConfigDriveError::Io {
            path: path.clone(),
            source,
        })?;
    }
    let label = match layout {
        ConfigDriveLayout::OpenStack => "config-2",
        ConfigDriveLayout::NoCloud => "cidata",
    };
    let temp = output.with_extension("iso.tmp");
    let result = tokio::process::Command::new("genisoimage")
        .args([
            "-quiet",
            "-r",
            "-J",
            "-V",
            label,
            "-input-charset",
            "utf-8",
            "-o",
        ])
        .arg(&temp)
        .arg(scratch.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(ConfigDriveError::Spawn)?;
    if !result.status.success() {
        let _ = std::fs::remove_file(&temp);
        return Err(ConfigDriveError::Genisoimage {
            stderr: String::from_utf8_lossy(&result.stderr).trim().to_owned(),
        });
    }
    std::fs::rename(&temp, output).map_err(|source| ConfigDriveError::Io {
        path: output.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn guest(layout: ConfigDriveLayout) -> GuestConfig {
        GuestConfig {
            hostname: "vm1".into(),
            layout,
            admin_pass: Some("pa\"ss".into()),
            public_keys: BTreeMap::from([("default".into(), "ssh-ed25519 AAAA x@y".into())]),
            user_data: Some(STANDARD.encode("#!/bin/sh\necho hi\n")),
        }
    }

    fn nics() -> Vec<NicSpec> {
        vec![NicSpec::UserForward {
            mac: "52:54:00:00:00:01".into(),
            forward_tcp: vec![22],
        }]
    }

    #[test]
    fn a_ports_link_names_its_tap_port_and_mtu() {
        let port = NicSpec::Port {
            port_id: "0f9d3c1e-7a2b-4c5d-8e9f-0123456789ab".into(),
            mac: "fa:16:3e:00:00:07".into(),
            mtu: 1450,
        };
        let files = files("id-1", "vm", &guest(ConfigDriveLayout::OpenStack), &[port]).unwrap();
        let (_, bytes) = files
            .iter()
            .find(|(n, _)| n == "openstack/latest/network_data.json")
            .unwrap();
        let network: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let link = &network["links"][0];
        assert_eq!(link["id"], "nft0f9d3c1e7a2");
        assert_eq!(link["vif_id"], "0f9d3c1e-7a2b-4c5d-8e9f-0123456789ab");
        assert_eq!(link["mtu"], 1450);
        assert_eq!(network["networks"][0]["link"], "nft0f9d3c1e7a2");
        assert_eq!(network["networks"][0]["type"], "ipv4_dhcp");
    }

    #[test]
    fn openstack_layout_has_metadata_network_and_user_data() {
        let files = files(
            "id-1",
            "vm one",
            &guest(ConfigDriveLayout::OpenStack),
            &nics(),
        )
        .unwrap();
        let get = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
        let meta: serde_json::Value =
            serde_json::from_slice(get("openstack/latest/meta_data.json")).unwrap();
        assert_eq!(meta["hostname"], "vm1");
        assert_eq!(meta["uuid"], "id-1");
        assert_eq!(meta["admin_pass"], "pa\"ss");
        assert_eq!(meta["public_keys"]["default"], "ssh-ed25519 AAAA x@y");
        assert_eq!(get("openstack/latest/user_data"), b"#!/bin/sh\necho hi\n");
        let network: serde_json::Value =
            serde_json::from_slice(get("openstack/latest/network_data.json")).unwrap();
        assert_eq!(
            network["links"][0]["ethernet_mac_address"],
            "52:54:00:00:00:01"
        );
        let vendor: serde_json::Value =
            serde_json::from_slice(get("openstack/latest/vendor_data.json")).unwrap();
        let cloud_config = vendor["cloud-init"].as_str().unwrap();
        assert!(
            cloud_config.contains("password: \"pa\\\"ss\""),
            "{cloud_config}"
        );
    }

    #[test]
    fn nocloud_layout_quotes_what_it_writes() {
        let files = files("id-1", "vm", &guest(ConfigDriveLayout::NoCloud), &nics()).unwrap();
        let get = |name: &str| {
            String::from_utf8(files.iter().find(|(n, _)| n == name).unwrap().1.clone()).unwrap()
        };
        assert_eq!(
            get("meta-data"),
            "instance-id: id-1\nlocal-hostname: vm1\npublic-keys:\n  - ssh-ed25519 AAAA x@y\n"
        );
        assert!(get("vendor-data").contains("password: \"pa\\\"ss\""));
        assert_eq!(get("user-data"), "#!/bin/sh\necho hi\n");
        assert!(get("network-config").contains("macaddress: \"52:54:00:00:00:01\""));
        assert_eq!(yaml_str("yes"), "\"yes\"");
        assert_eq!(yaml_str("12"), "\"12\"");
        assert_eq!(yaml_str("a: b"), "\"a: b\"");
    }

    #[test]
    fn bad_user_data_is_refused() {
        let mut g = guest(ConfigDriveLayout::OpenStack);
        g.user_data = Some("not base64!".into());
        assert!(matches!(
            files("id", "vm", &g, &[]),
            Err(ConfigDriveError::UserData(_))
        ));
    }
}
