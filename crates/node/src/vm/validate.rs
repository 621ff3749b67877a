//! Checks on what the control plane asks for, before anything is created.

use nefos_node_api::{NicSpec, VmSpec};

use super::VmError;

fn invalid(reason: impl Into<String>) -> VmError {
    VmError::Invalid {
        reason: reason.into(),
    }
}

/// VM ids name directories: letters, digits, `-` and `_`, at most 64.
pub fn vm_id(id: &str) -> Result<(), VmError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid VM id {id:?}: use 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}

pub fn spec(spec: &VmSpec) -> Result<(), VmError> {
    if spec.name.is_empty() || spec.name.len() > 255 || spec.name.chars().any(char::is_control) {
        return Err(invalid(
            "name must be 1 to 255 characters without control characters",
        ));
    }
    if !(1..=256).contains(&spec.vcpus) {
        return Err(invalid(format!(
            "vcpus must be 1 to 256, not {}",
            spec.vcpus
        )));
    }
    if spec.ram_mib < 32 {
        return Err(invalid(format!(
            "ram_mib must be at least 32, not {}",
            spec.ram_mib
        )));
    }
    if let Some(model) = &spec.cpu_model
        && nefos_node_api::cpu_model(model).is_none()
    {
        return Err(invalid(format!(
            "cpu_model {model:?} is not one of {}",
            nefos_node_api::CpuModel::names()
        )));
    }
    hostname(&spec.guest.hostname)?;
    let mut macs = Vec::new();
    for nic in &spec.nics {
        match nic {
            NicSpec::UserForward { mac, forward_tcp } => {
                mac_address(mac)?;
                if forward_tcp.contains(&0) {
                    return Err(invalid("forward_tcp ports must be 1 to 65535"));
                }
                macs.push(mac.to_ascii_lowercase());
            }
            NicSpec::Port {
                port_id, mac, mtu, ..
            } => {
                mac_address(mac)?;
                if port_id.is_empty() || !(576..=9000).contains(mtu) {
                    return Err(invalid(
                        "a port NIC needs its port id and an MTU of 576 to 9000",
                    ));
                }
                macs.push(mac.to_ascii_lowercase());
            }
        }
    }
    macs.sort();
    if macs.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("two NICs have the same MAC address"));
    }
    Ok(())
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
fn hostname(name: &str) -> Result<(), VmError> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(invalid(format!("invalid hostname {name:?}")))
    }
}

/// Six colon-separated hex octets, unicast.
fn mac_address(mac: &str) -> Result<(), VmError> {
    let octets: Vec<_> = mac.split(':').map(|o| u8::from_str_radix(o, 16)).collect();
    let ok = octets.len() == 6
        && mac.split(':').all(|o| o.len() == 2)
        && octets.iter().all(Result::is_ok)
        && octets[0].as_ref().is_ok_and(|first| first & 1 == 0);
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("invalid or multicast MAC address {mac:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hostnames_and_macs() {
        assert!(vm_id("6a1e0f2c-aaaa-4bbb-8ccc-123456789abc").is_ok());
        assert!(vm_id("../etc").is_err());
        assert!(vm_id("").is_err());
        assert!(hostname("vm-1.example").is_ok());
        assert!(hostname("-bad").is_err());
        assert!(hostname("under_score").is_err());
        assert!(mac_address("52:54:00:12:34:56").is_ok());
        assert!(mac_address("01:00:5e:00:00:01").is_err());
        assert!(mac_address("52:54:00:12:34").is_err());
        assert!(mac_address("52:54:00:12:34:5g").is_err());
    }
}
