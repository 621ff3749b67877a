//! The resources as Neutron shows them. Times are Neutron's `YYYY-MM-DDTHH:MM:SSZ`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkView {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub project_id: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub subnets: Vec<String>,
    pub shared: bool,
    #[serde(rename = "router:external")]
    pub router_external: bool,
    pub mtu: i64,
    pub port_security_enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
    /// Administrators only: the VXLAN segment.
    #[serde(
        rename = "provider:network_type",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub provider_network_type: Option<String>,
    #[serde(
        rename = "provider:physical_network",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub provider_physical_network: Option<String>,
    #[serde(
        rename = "provider:segmentation_id",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub provider_segmentation_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRouteView {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetView {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub description: String,
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub allocation_pools: Vec<AllocationPool>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRouteView>,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
    pub subnetpool_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIpView {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPairView {
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortView {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub description: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub fixed_ips: Vec<FixedIpView>,
    pub port_security_enabled: bool,
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<AddressPairView>,
    #[serde(rename = "binding:host_id")]
    pub binding_host_id: String,
    #[serde(rename = "binding:vnic_type")]
    pub binding_vnic_type: String,
    #[serde(rename = "binding:vif_type")]
    pub binding_vif_type: String,
    #[serde(rename = "binding:profile")]
    pub binding_profile: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "binding:vif_details")]
    pub binding_vif_details: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tenant_id: String,
    pub project_id: String,
    pub security_group_rules: Vec<SecurityGroupRuleView>,
    pub stateful: bool,
    pub shared: bool,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRuleView {
    pub id: String,
    pub security_group_id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub remote_address_group_id: Option<String>,
    pub normalized_cidr: Option<String>,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

/// A project's limits as Neutron names them; `-1` is no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaView {
    pub network: i64,
    pub port: i64,
    pub floatingip: i64,
    pub subnet: i64,
    pub security_group: i64,
    pub security_group_rule: i64,
}

/// One resource's limit, usage and reservations (`/details`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaDetail {
    pub limit: i64,
    pub used: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalGatewayInfoView {
    pub network_id: String,
    pub enable_snat: bool,
    pub external_fixed_ips: Vec<FixedIpView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tenant_id: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub status: String,
    pub external_gateway_info: Option<ExternalGatewayInfoView>,
    pub routes: Vec<HostRouteView>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

/// The reply to `add_router_interface` and `remove_router_interface`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterInterfaceView {
    /// The router's id.
    pub id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub port_id: String,
    pub network_id: String,
    pub subnet_id: String,
    pub subnet_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpView {
    pub id: String,
    pub tenant_id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub status: String,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}
