//! Neutron's allowed address pairs: other addresses a port may send from (a virtual IP
//! that moves between VMs by VRRP, say), each with the MAC it may use for them. The node's
//! anti-spoofing lets them through; they need port security, which is what they loosen.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::NetworkError;
use crate::subnets::parse_cidr;

/// Neutron's `max_allowed_address_pair`.
pub const MAX_ADDRESS_PAIRS: usize = 10;

/// A pair as a port holds it: the MAC is the port's own when the request named none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    /// An address or a CIDR.
    pub ip_address: String,
    pub mac_address: String,
}

/// A pair as a request names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPairRequest {
    pub ip_address: Option<String>,
    pub mac_address: Option<String>,
}

/// The pairs `requests` name, checked as Neutron checks them, for a port whose MAC is
/// `port_mac`.
pub(crate) fn checked(
    requests: Vec<AddressPairRequest>,
    port_mac: &str,
) -> Result<Vec<AddressPair>, NetworkError> {
    if requests.len() > MAX_ADDRESS_PAIRS {
        return Err(NetworkError::bad_request(
            "AllowedAddressPairExhausted",
            format!("The number of allowed address pair exceeds the maximum {MAX_ADDRESS_PAIRS}."),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut pairs = Vec::new();
    for request in requests {
        let mac = match &request.mac_address {
            Some(text) => Some(crate::ports::check_mac(text)?),
            None => None,
        };
        let Some(ip) = request.ip_address else {
            return Err(NetworkError::bad_request(
                "AllowedAddressPairsMissingIP",
                "AllowedAddressPair must contain ip_address",
            ));
        };
        if !seen.insert((mac.clone(), ip.clone())) {
            return Err(NetworkError::bad_request(
                "DuplicateAddressPairInRequest",
                format!(
                    "Request contains duplicate address pair: mac_address {} ip_address {ip}.",
                    mac.as_deref().unwrap_or("None")
                ),
            ));
        }
        let ip_address = if ip.contains('/') {
            parse_cidr(&ip)?.to_string()
        } else {
            ip.parse::<IpAddr>()
                .map_err(|_| NetworkError::invalid(format!("'{ip}' is not a valid IP address")))?
                .to_string()
        };
        pairs.push(AddressPair {
            ip_address,
            mac_address: mac.unwrap_or_else(|| port_mac.to_owned()),
        });
    }
    Ok(pairs)
}

/// Neutron's refusal of pairs on a port without port security.
pub(crate) fn security_required() -> NetworkError {
    NetworkError::conflict(
        "AddressPairAndPortSecurityRequired",
        "Port Security must be enabled in order to have allowed address pairs on a port.",
    )
}

/// The pairs kept in a port's row.
pub(crate) fn from_row(json: &str, port: &str) -> Vec<AddressPair> {
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::warn!(port, %error, "a port's allowed address pairs cannot be read");
        Vec::new()
    })
}

pub(crate) fn to_row(pairs: &[AddressPair]) -> String {
    serde_json::to_string(pairs).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ip: &str, mac: Option<&str>) -> AddressPairRequest {
        AddressPairRequest {
            ip_address: Some(ip.to_owned()),
            mac_address: mac.map(str::to_owned),
        }
    }

    #[test]
    fn pairs_are_checked_as_neutron_checks_them() {
        let mac = "fa:16:3e:00:00:01";
        let pairs = checked(
            vec![
                request("10.0.0.99", None),
                request("10.1.0.0/24", Some("FA:16:3E:00:00:02")),
                request("fd00::1", None),
            ],
            mac,
        )
        .unwrap();
        assert_eq!(pairs[0].mac_address, mac);
        assert_eq!(pairs[1].mac_address, "fa:16:3e:00:00:02");
        assert_eq!(pairs[1].ip_address, "10.1.0.0/24");
        for (requests, kind) in [
            (vec![request("10.0.0.1/24", None)], "InvalidInput"),
            (vec![request("10.0.0.300", None)], "InvalidInput"),
            (vec![request("10.0.0.1", Some("nope"))], "InvalidInput"),
            (
                vec![request("10.0.0.1", None), request("10.0.0.1", None)],
                "DuplicateAddressPairInRequest",
            ),
            (
                vec![AddressPairRequest::default()],
                "AllowedAddressPairsMissingIP",
            ),
            (
                (0..11)
                    .map(|i| request(&format!("10.0.0.{i}"), None))
                    .collect(),
                "AllowedAddressPairExhausted",
            ),
        ] {
            let refused = checked(requests, mac).unwrap_err();
            assert_eq!(refused.kind(), kind, "{refused}");
        }
        let row = to_row(&pairs);
        assert_eq!(from_row(&row, "p"), pairs);
    }
}
