//! Networks, subnets and ports in Neutron's shapes ([`nefos_network_api`]), as JSON
//! objects for the listing machinery.

use nefos_db::time::from_micros;
use nefos_network::{
    FloatingIp, Network, Port, Router, RouterInterface, SecurityGroup, SecurityGroupRule, Subnet,
};
use nefos_network_api::{
    AddressPairView, AllocationPool, ExternalGatewayInfoView, FixedIpView, FloatingIpView,
    HostRouteView, NetworkView, PortView, RouterInterfaceView, RouterView, SecurityGroupRuleView,
    SecurityGroupView, SubnetView,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Neutron's timestamp form: `2026-12-07T09:28:15Z`.
fn timestamp(micros: i64) -> String {
    from_micros(micros).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A view as a JSON object.
pub(crate) fn object(view: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(view) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The attributes a network listing filters and sorts by.
pub(crate) const NETWORK_ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "description",
    "admin_state_up",
    "status",
    "subnets",
    "shared",
    "router:external",
    "mtu",
    "port_security_enabled",
    "created_at",
    "updated_at",
    "revision_number",
    "provider:network_type",
    "provider:segmentation_id",
];

pub(crate) fn network(network: &Network, admin: bool) -> NetworkView {
    NetworkView {
        id: network.id.clone(),
        name: network.name.clone(),
        tenant_id: network.project_id.clone(),
        project_id: network.project_id.clone(),
        description: network.description.clone(),
        admin_state_up: network.admin_state_up,
        status: "ACTIVE".to_owned(),
        subnets: network.subnets.clone(),
        shared: network.shared,
        router_external: network.external,
        mtu: network.mtu,
        port_security_enabled: network.port_security_enabled,
        created_at: timestamp(network.created_at),
        updated_at: timestamp(network.updated_at),
        revision_number: network.revision,
        provider_network_type: admin.then(|| "vxlan".to_owned()),
        provider_physical_network: None,
        provider_segmentation_id: admin.then_some(network.vni),
    }
}

pub(crate) const SUBNET_ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "network_id",
    "tenant_id",
    "project_id",
    "description",
    "ip_version",
    "cidr",
    "gateway_ip",
    "enable_dhcp",
    "ipv6_address_mode",
    "ipv6_ra_mode",
    "subnetpool_id",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn subnet(subnet: &Subnet) -> SubnetView {
    let cidr = subnet.cidr;
    let address = |number| {
        cidr.address(number)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    SubnetView {
        id: subnet.id.clone(),
        name: subnet.name.clone(),
        network_id: subnet.network_id.clone(),
        tenant_id: subnet.project_id.clone(),
        project_id: subnet.project_id.clone(),
        description: subnet.description.clone(),
        ip_version: cidr.version().number(),
        cidr: cidr.to_string(),
        gateway_ip: subnet.gateway_ip.map(|g| g.to_string()),
        enable_dhcp: subnet.enable_dhcp,
        allocation_pools: subnet
            .allocation_pools
            .iter()
            .map(|pool| AllocationPool {
                start: address(pool.first),
                end: address(pool.last),
            })
            .collect(),
        dns_nameservers: subnet.dns_nameservers.clone(),
        host_routes: subnet
            .host_routes
            .iter()
            .map(|route| HostRouteView {
                destination: route.destination.clone(),
                nexthop: route.nexthop.clone(),
            })
            .collect(),
        ipv6_address_mode: subnet.ipv6_address_mode.clone(),
        ipv6_ra_mode: subnet.ipv6_ra_mode.clone(),
        subnetpool_id: None,
        created_at: timestamp(subnet.created_at),
        updated_at: timestamp(subnet.updated_at),
        revision_number: subnet.revision,
    }
}

pub(crate) const PORT_ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "network_id",
    "tenant_id",
    "project_id",
    "description",
    "mac_address",
    "admin_state_up",
    "status",
    "device_id",
    "device_owner",
    "fixed_ips",
    "port_security_enabled",
    "security_groups",
    "allowed_address_pairs",
    "binding:host_id",
    "binding:vnic_type",
    "binding:vif_type",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn port(port: &Port) -> PortView {
    PortView {
        id: port.id.clone(),
        name: port.name.clone(),
        network_id: port.network_id.clone(),
        tenant_id: port.project_id.clone(),
        project_id: port.project_id.clone(),
        description: port.description.clone(),
        mac_address: port.mac_address.clone(),
        admin_state_up: port.admin_state_up,
        status: port.status.clone(),
        device_id: port.device_id.clone(),
        device_owner: port.device_owner.clone(),
        fixed_ips: port
            .fixed_ips
            .iter()
            .map(|ip| FixedIpView {
                subnet_id: ip.subnet_id.clone(),
                ip_address: ip.ip_address.to_string(),
            })
            .collect(),
        port_security_enabled: port.port_security_enabled,
        security_groups: port.security_groups.clone(),
        allowed_address_pairs: port
            .allowed_address_pairs
            .iter()
            .map(|pair| AddressPairView {
                ip_address: pair.ip_address.clone(),
                mac_address: pair.mac_address.clone(),
            })
            .collect(),
        binding_host_id: port.binding_host.clone().unwrap_or_default(),
        binding_vnic_type: "normal".to_owned(),
        // No node has plugged the port in yet.
        binding_vif_type: if port.binding_host.is_some() {
            "tap"
        } else {
            "unbound"
        }
        .to_owned(),
        binding_profile: Map::new(),
        binding_vif_details: Map::new(),
        created_at: timestamp(port.created_at),
        updated_at: timestamp(port.updated_at),
        revision_number: port.revision,
    }
}

pub(crate) const SECURITY_GROUP_ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "description",
    "tenant_id",
    "project_id",
    "stateful",
    "shared",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn security_group(group: &SecurityGroup) -> SecurityGroupView {
    SecurityGroupView {
        id: group.id.clone(),
        name: group.name.clone(),
        description: group.description.clone(),
        tenant_id: group.project_id.clone(),
        project_id: group.project_id.clone(),
        security_group_rules: group.rules.iter().map(security_group_rule).collect(),
        stateful: true,
        shared: false,
        tags: Vec::new(),
        created_at: timestamp(group.created_at),
        updated_at: timestamp(group.updated_at),
        revision_number: group.revision,
    }
}

pub(crate) const SECURITY_GROUP_RULE_ATTRIBUTES: &[&str] = &[
    "id",
    "security_group_id",
    "tenant_id",
    "project_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "description",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn security_group_rule(rule: &SecurityGroupRule) -> SecurityGroupRuleView {
    let any = match rule.ethertype {
        nefos_network::IpVersion::V4 => "0.0.0.0/0",
        nefos_network::IpVersion::V6 => "::/0",
    };
    SecurityGroupRuleView {
        id: rule.id.clone(),
        security_group_id: rule.security_group_id.clone(),
        tenant_id: rule.project_id.clone(),
        project_id: rule.project_id.clone(),
        direction: rule.direction.as_str().to_owned(),
        ethertype: match rule.ethertype {
            nefos_network::IpVersion::V4 => "IPv4",
            nefos_network::IpVersion::V6 => "IPv6",
        }
        .to_owned(),
        protocol: rule.protocol.clone(),
        port_range_min: rule.port_range_min,
        port_range_max: rule.port_range_max,
        remote_ip_prefix: rule.remote_ip_prefix.clone(),
        remote_group_id: rule.remote_group_id.clone(),
        remote_address_group_id: None,
        normalized_cidr: rule.remote_group_id.is_none().then(|| {
            rule.remote_ip_prefix
                .clone()
                .unwrap_or_else(|| any.to_owned())
        }),
        description: rule.description.clone(),
        created_at: timestamp(rule.created_at),
        updated_at: timestamp(rule.updated_at),
        revision_number: rule.revision,
    }
}

pub(crate) const ROUTER_ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "description",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "status",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn router(router: &Router) -> RouterView {
    RouterView {
        id: router.id.clone(),
        name: router.name.clone(),
        description: router.description.clone(),
        tenant_id: router.project_id.clone(),
        project_id: router.project_id.clone(),
        admin_state_up: router.admin_state_up,
        status: "ACTIVE".to_owned(),
        external_gateway_info: router.external_gateway.as_ref().map(|gateway| {
            ExternalGatewayInfoView {
                network_id: gateway.network_id.clone(),
                enable_snat: gateway.enable_snat,
                external_fixed_ips: gateway
                    .fixed_ips
                    .iter()
                    .map(|ip| FixedIpView {
                        subnet_id: ip.subnet_id.clone(),
                        ip_address: ip.ip_address.to_string(),
                    })
                    .collect(),
            }
        }),
        routes: Vec::new(),
        tags: Vec::new(),
        created_at: timestamp(router.created_at),
        updated_at: timestamp(router.updated_at),
        revision_number: router.revision,
    }
}

pub(crate) fn router_interface(interface: &RouterInterface) -> RouterInterfaceView {
    RouterInterfaceView {
        id: interface.router_id.clone(),
        tenant_id: interface.project_id.clone(),
        project_id: interface.project_id.clone(),
        port_id: interface.port_id.clone(),
        network_id: interface.network_id.clone(),
        subnet_id: interface.subnet_ids.first().cloned().unwrap_or_default(),
        subnet_ids: interface.subnet_ids.clone(),
    }
}

pub(crate) const FLOATING_IP_ATTRIBUTES: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "floating_network_id",
    "floating_ip_address",
    "port_id",
    "fixed_ip_address",
    "router_id",
    "status",
    "description",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn floating_ip(floating: &FloatingIp) -> FloatingIpView {
    FloatingIpView {
        id: floating.id.clone(),
        tenant_id: floating.project_id.clone(),
        project_id: floating.project_id.clone(),
        floating_network_id: floating.floating_network_id.clone(),
        floating_ip_address: floating.floating_ip_address.clone(),
        port_id: floating.port_id.clone(),
        fixed_ip_address: floating.fixed_ip_address.clone(),
        router_id: floating.router_id.clone(),
        status: floating.status().to_owned(),
        description: floating.description.clone(),
        tags: Vec::new(),
        created_at: timestamp(floating.created_at),
        updated_at: timestamp(floating.updated_at),
        revision_number: floating.revision,
    }
}
