//! Floating IPs: an address of an external network, held by a port of the service's own
//! (`network:floatingip`), that a router forwards to one fixed address of a project's
//! port: DNAT in, SNAT out. The router is the one with a gateway on the floating IP's
//! network and an interface on the fixed address's subnet; without one there is no way
//! in, and the association is refused as Neutron refuses it.

use std::net::IpAddr;

use nefos_db::network::{self as q, FloatingIpRow, PortSelection};
use nefos_db::time::now_micros;
use nefos_db::{DbError, Transaction};
use nefos_identity::AuthContext;
use nefos_quota::Provision;

use crate::networks::visible_network_row_in;
use crate::routers::{ROUTER_INTERFACE, drop_port};
use crate::{
    FLOATING_IP_RESOURCE, FixedIpRequest, NetworkError, Networks, NewPort, check_text, new_id,
    owns, project_of,
};

/// The `device_owner` of the port holding a floating IP's address.
pub const FLOATING_IP_OWNER: &str = "network:floatingip";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingIp {
    pub id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    /// The service's own port on the external network, which holds the address.
    pub floating_port_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub description: String,
    /// The user who allocated it in their own project; Synnefo's `user_id`.
    pub charged_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

impl FloatingIp {
    /// `ACTIVE` while it is forwarded to a port, `DOWN` otherwise.
    pub fn status(&self) -> &'static str {
        if self.port_id.is_some() {
            "ACTIVE"
        } else {
            "DOWN"
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewFloatingIp {
    pub floating_network_id: String,
    pub project_id: Option<String>,
    /// A particular address (administrators only).
    pub floating_ip_address: Option<IpAddr>,
    /// The external subnet to take it from.
    pub subnet_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<IpAddr>,
    pub description: String,
}

#[derive(Debug, Clone, Default)]
pub struct FloatingIpUpdate {
    /// `Some(None)` disassociates.
    pub port_id: Option<Option<String>>,
    pub fixed_ip_address: Option<IpAddr>,
    pub description: Option<String>,
}

fn no_floating_ip(id: &str) -> NetworkError {
    NetworkError::NotFound {
        kind: "FloatingIPNotFound",
        message: format!("Floating IP {id} could not be found"),
    }
}

fn floating_ip(row: FloatingIpRow) -> FloatingIp {
    FloatingIp {
        id: row.id,
        project_id: row.project_id,
        floating_network_id: row.floating_network_id,
        floating_ip_address: row.floating_ip_address,
        floating_port_id: row.floating_port_id,
        port_id: row.port_id,
        fixed_ip_address: row.fixed_ip_address,
        router_id: row.router_id,
        description: row.description,
        charged_to: row.charged_to,
        created_at: row.created_at,
        updated_at: row.updated_at,
        revision: row.revision,
    }
}

impl Networks {
    pub async fn create_floating_ip(
        &self,
        caller: &AuthContext,
        new: NewFloatingIp,
    ) -> Result<FloatingIp, NetworkError> {
        let own = project_of(caller)?;
        let project = new.project_id.clone().unwrap_or_else(|| own.to_owned());
        if project != own && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_floatingip:tenant_id"));
        }
        if new.floating_ip_address.is_some() && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed(
                "create_floatingip:floating_ip_address",
            ));
        }
        check_text("description", &new.description)?;
        let mut tx = self.db.begin().await?;
        let network = visible_network_row_in(&mut tx, caller, &new.floating_network_id).await?;
        if !network.external {
            return Err(NetworkError::bad_request(
                "BadRequest",
                format!(
                    "Bad floatingip request: Network {} is not a valid external network.",
                    network.id
                ),
            ));
        }
        let charged = (project == own).then(|| caller.user_id.clone());
        if let Some(user) = &charged {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(&project, user, FLOATING_IP_RESOURCE, 1)],
                )
                .await
                .map_err(|e| NetworkError::quota("floatingip", e))?;
        }
        let id = new_id();
        let address = (new.subnet_id.is_some() || new.floating_ip_address.is_some()).then(|| {
            vec![FixedIpRequest {
                subnet_id: new.subnet_id.clone(),
                ip_address: new.floating_ip_address,
            }]
        });
        let holder = NewPort {
            network_id: network.id.clone(),
            device_id: id.clone(),
            device_owner: FLOATING_IP_OWNER.to_owned(),
            port_security_enabled: Some(false),
            fixed_ips: address,
            ..NewPort::default()
        };
        let held = self
            .make_port(&mut tx, &network, project.clone(), None, None, holder)
            .await?;
        let Some(address) = held.fixed_ips.iter().find(|ip| ip.ip_address.is_ipv4()) else {
            return Err(NetworkError::conflict(
                "IpAddressGenerationFailure",
                format!("No more IP addresses available on network {}.", network.id),
            ));
        };
        let now = now_micros();
        let mut row = FloatingIpRow {
            id,
            project_id: project,
            floating_network_id: network.id,
            floating_port_id: held.id,
            floating_ip_address: address.ip_address.to_string(),
            port_id: None,
            fixed_ip_address: None,
            router_id: None,
            description: new.description,
            charged_to: charged,
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        if let Some(port) = &new.port_id {
            self.associate(&mut tx, caller, &mut row, port, new.fixed_ip_address)
                .await?;
        }
        q::insert_floating_ip(&mut tx, &row).await.map_err(taken)?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a floating IP"))?;
        tracing::info!(floating_ip = %row.id, address = %row.floating_ip_address, "floating IP allocated");
        Ok(floating_ip(row))
    }

    pub async fn floating_ip(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<FloatingIp, NetworkError> {
        project_of(caller)?;
        match q::get_floating_ip(self.db.pool(), id).await? {
            Some(row) if owns(caller, &row.project_id) => Ok(floating_ip(row)),
            _ => Err(no_floating_ip(id)),
        }
    }

    pub async fn floating_ips(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<FloatingIp>, NetworkError> {
        let project = project_of(caller)?;
        let scope = (!caller.is_cloud_admin()).then_some(project);
        let rows = q::list_floating_ips(self.db.pool(), scope).await?;
        Ok(rows.into_iter().map(floating_ip).collect())
    }

    /// Associates, moves or disassociates a floating IP. Returns it with the routers whose
    /// forwarding changed (the one before and the one after).
    pub async fn update_floating_ip(
        &self,
        caller: &AuthContext,
        id: &str,
        update: FloatingIpUpdate,
    ) -> Result<(FloatingIp, Vec<String>), NetworkError> {
        self.floating_ip(caller, id).await?;
        let mut tx = self.db.begin().await?;
        let mut row = q::get_floating_ip(&mut *tx, id)
            .await?
            .ok_or_else(|| no_floating_ip(id))?;
        let before = row.router_id.clone();
        if let Some(description) = update.description {
            check_text("description", &description)?;
            row.description = description;
        }
        match update.port_id {
            None => {}
            Some(None) => {
                row.port_id = None;
                row.fixed_ip_address = None;
                row.router_id = None;
            }
            Some(Some(port)) => {
                self.associate(&mut tx, caller, &mut row, &port, update.fixed_ip_address)
                    .await?;
            }
        }
        row.updated_at = now_micros();
        row.revision += 1;
        if !q::update_floating_ip(&mut tx, &row).await.map_err(taken)? {
            return Err(NetworkError::conflict(
                "Conflict",
                format!("Floating IP {id} changed meanwhile; try again."),
            ));
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a floating IP's update"))?;
        tracing::info!(floating_ip = %id, port = ?row.port_id, "floating IP updated");
        let routers = before.into_iter().chain(row.router_id.clone()).collect();
        Ok((floating_ip(row), routers))
    }

    /// Releases a floating IP: its address goes back to the pool, its quota to the
    /// project. Returns the router that forwarded it, if any.
    pub async fn delete_floating_ip(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Option<String>, NetworkError> {
        self.floating_ip(caller, id).await?;
        let mut tx = self.db.begin().await?;
        let Some(row) = q::get_floating_ip(&mut *tx, id).await? else {
            return Err(no_floating_ip(id));
        };
        if !q::delete_floating_ip(&mut tx, id).await? {
            return Err(no_floating_ip(id));
        }
        let holders = q::list_ports(
            &mut *tx,
            PortSelection {
                device: Some(id),
                ..PortSelection::default()
            },
        )
        .await?;
        for holder in holders {
            let held = q::port_addresses(&mut *tx, &holder.id).await?;
            drop_port(
                &mut tx,
                &crate::ports::port(holder, crate::ports::fixed_ips(&held)),
            )
            .await?;
        }
        if let Some(user) = &row.charged_to {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(
                        &row.project_id,
                        user,
                        FLOATING_IP_RESOURCE,
                        -1,
                    )],
                )
                .await
                .map_err(NetworkError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a floating IP's release"))?;
        tracing::info!(floating_ip = %id, address = %row.floating_ip_address, "floating IP released");
        Ok(row.router_id)
    }

    /// Points `row` at `port_id`'s address `fixed` (its first IPv4 address when not
    /// named), through the router that joins that address's subnet to the floating IP's
    /// network.
    async fn associate(
        &self,
        tx: &mut Transaction,
        caller: &AuthContext,
        row: &mut FloatingIpRow,
        port_id: &str,
        fixed: Option<IpAddr>,
    ) -> Result<(), NetworkError> {
        let Some(port) = q::get_port(&mut **tx, port_id).await? else {
            return Err(NetworkError::no_port(port_id));
        };
        if !owns(caller, &port.project_id) || port.project_id != row.project_id {
            return Err(NetworkError::no_port(port_id));
        }
        if port.device_owner.starts_with("network:") {
            return Err(NetworkError::bad_request(
                "BadRequest",
                format!(
                    "Bad floatingip request: Port {port_id} has owner {} and cannot have a \
                     floating IP.",
                    port.device_owner
                ),
            ));
        }
        let held = q::port_addresses(&mut **tx, port_id).await?;
        let address = match fixed {
            Some(fixed) => held
                .iter()
                .find(|a| a.address.parse::<IpAddr>().ok() == Some(fixed))
                .ok_or_else(|| {
                    NetworkError::bad_request(
                        "BadRequest",
                        format!(
                            "Bad floatingip request: Port {port_id} does not have fixed ip \
                             {fixed}."
                        ),
                    )
                })?,
            None => {
                let v4: Vec<_> = held.iter().filter(|a| !a.address.contains(':')).collect();
                match v4.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(NetworkError::bad_request(
                            "BadRequest",
                            format!(
                                "Bad floatingip request: Port {port_id} does not have any \
                                 IPv4 address."
                            ),
                        ));
                    }
                    _ => {
                        return Err(NetworkError::bad_request(
                            "BadRequest",
                            format!(
                                "Bad floatingip request: Port {port_id} has multiple fixed \
                                 IPv4 addresses. Must provide a specific IPv4 address when \
                                 assigning a floating IP."
                            ),
                        ));
                    }
                }
            }
        };
        if address.address.contains(':') {
            return Err(NetworkError::bad_request(
                "BadRequest",
                format!(
                    "Bad floatingip request: Cannot add floating IP to port {port_id} that \
                     has no IPv4 address."
                ),
            ));
        }
        let router = self
            .router_between(tx, &address.subnet_id, &row.floating_network_id)
            .await?
            .ok_or_else(|| NetworkError::NotFound {
                kind: "ExternalGatewayForFloatingIPNotFound",
                message: format!(
                    "External network {} is not reachable from subnet {}.  Therefore, cannot \
                     associate Port {port_id} with a Floating IP.",
                    row.floating_network_id, address.subnet_id
                ),
            })?;
        let others = q::port_floating_ips(&mut **tx, port_id).await?;
        if let Some(other) = others.iter().find(|other| {
            other.id != row.id && other.fixed_ip_address.as_deref() == Some(&address.address)
        }) {
            return Err(already_associated(&address.address, port_id, &other.id));
        }
        row.port_id = Some(port_id.to_owned());
        row.fixed_ip_address = Some(address.address.clone());
        row.router_id = Some(router);
        Ok(())
    }

    /// The router with an interface on `subnet` and its gateway on `external`.
    async fn router_between(
        &self,
        tx: &mut Transaction,
        subnet: &str,
        external: &str,
    ) -> Result<Option<String>, NetworkError> {
        let Some(subnet_row) = q::get_subnet(&mut **tx, subnet).await? else {
            return Ok(None);
        };
        let interfaces = q::list_ports(
            &mut **tx,
            PortSelection {
                network: Some(&subnet_row.network_id),
                ..PortSelection::default()
            },
        )
        .await?;
        for interface in interfaces {
            if interface.device_owner != ROUTER_INTERFACE {
                continue;
            }
            let on_subnet = q::port_addresses(&mut **tx, &interface.id)
                .await?
                .iter()
                .any(|a| a.subnet_id == subnet);
            if !on_subnet {
                continue;
            }
            if let Some(router) = q::get_router(&mut **tx, &interface.device_id).await?
                && router.external_network_id.as_deref() == Some(external)
            {
                return Ok(Some(router.id));
            }
        }
        Ok(None)
    }
}

fn already_associated(address: &str, port: &str, other: &str) -> NetworkError {
    NetworkError::conflict(
        "FloatingIPPortAlreadyAssociated",
        format!(
            "Cannot associate floating IP with port {port} using fixed IP {address}, as that \
             fixed IP already has floating IP {other}."
        ),
    )
}

/// A fixed address another floating IP took meanwhile (the unique index saw it).
fn taken(error: DbError) -> NetworkError {
    match error {
        DbError::Conflict { .. } => NetworkError::conflict(
            "FloatingIPPortAlreadyAssociated",
            "That fixed IP already has a floating IP.",
        ),
        other => other.into(),
    }
}
