//! Security groups (Neutron's): named sets of rules that say what traffic may reach a
//! port (ingress) and leave it (egress); anything else is dropped, and replies to what
//! was allowed pass (the rules are stateful). Every project has a default group, made the
//! first time the project needs one, that lets its members talk to each other and
//! anything out; a port with port security is in its project's default group unless it
//! names others. Nodes enforce the rules with nftables on each port's traffic.

use std::collections::BTreeSet;

use nefos_db::network::{self as q, SecurityGroupRow, SecurityGroupRuleRow};
use nefos_db::time::now_micros;
use nefos_db::{Connection, DbError};
use nefos_identity::AuthContext;
use nefos_quota::Provision;

use crate::address::{Cidr, CidrError, IpVersion};
use crate::{
    NetworkError, Networks, SECURITY_GROUP_RESOURCE, check_text, new_id, owns, project_of,
};

/// The name of every project's default group.
pub const DEFAULT_GROUP: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub rules: Vec<SecurityGroupRule>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    pub project_id: String,
    pub direction: Direction,
    pub ethertype: IpVersion,
    /// As the rule was given: a name (`tcp`) or a number; absent: any protocol.
    pub protocol: Option<String>,
    /// Ports for TCP, UDP and SCTP; the ICMP type and code for ICMP.
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

impl SecurityGroupRule {
    /// The IP protocol number the rule matches, if it names one.
    pub fn protocol_number(&self) -> Option<u8> {
        self.protocol.as_deref().and_then(protocol_number)
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewSecurityGroup {
    pub name: String,
    pub description: String,
    /// Another project's: administrators only.
    pub project_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewSecurityGroupRule {
    pub security_group_id: String,
    pub direction: Direction,
    pub ethertype: IpVersion,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
}

/// An IP protocol by Neutron's names or its number.
fn protocol_number(text: &str) -> Option<u8> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" | "ipv6-icmp" => Some(58),
        "sctp" => Some(132),
        "gre" => Some(47),
        "esp" => Some(50),
        "ah" => Some(51),
        "udplite" => Some(136),
        "any" => None,
        other => other.parse().ok(),
    }
}

fn version_of(text: &str) -> Option<IpVersion> {
    match text {
        "IPv4" => Some(IpVersion::V4),
        "IPv6" => Some(IpVersion::V6),
        _ => None,
    }
}

pub fn ethertype_name(version: IpVersion) -> &'static str {
    match version {
        IpVersion::V4 => "IPv4",
        IpVersion::V6 => "IPv6",
    }
}

pub(crate) fn rule(row: SecurityGroupRuleRow) -> Result<SecurityGroupRule, NetworkError> {
    let corrupt = |what: &str| NetworkError::Corrupt {
        what: format!("security group rule {}: {what}", row.id),
    };
    let direction = match row.direction.as_str() {
        "ingress" => Direction::Ingress,
        "egress" => Direction::Egress,
        _ => return Err(corrupt("direction")),
    };
    let ethertype = version_of(&row.ethertype).ok_or_else(|| corrupt("ethertype"))?;
    let port = |value: Option<i64>| value.and_then(|v| u16::try_from(v).ok());
    Ok(SecurityGroupRule {
        direction,
        ethertype,
        port_range_min: port(row.port_range_min),
        port_range_max: port(row.port_range_max),
        id: row.id,
        security_group_id: row.security_group_id,
        project_id: row.project_id,
        protocol: row.protocol,
        remote_ip_prefix: row.remote_ip_prefix,
        remote_group_id: row.remote_group_id,
        description: row.description,
        created_at: row.created_at,
        updated_at: row.updated_at,
        revision: row.revision,
    })
}

fn group(row: SecurityGroupRow, rules: Vec<SecurityGroupRule>) -> SecurityGroup {
    SecurityGroup {
        id: row.id,
        project_id: row.project_id,
        name: row.name,
        description: row.description,
        rules,
        created_at: row.created_at,
        updated_at: row.updated_at,
        revision: row.revision,
    }
}

fn no_group(id: &str) -> NetworkError {
    NetworkError::NotFound {
        kind: "SecurityGroupNotFound",
        message: format!("Security group {id} does not exist"),
    }
}

fn no_rule(id: &str) -> NetworkError {
    NetworkError::NotFound {
        kind: "SecurityGroupRuleNotFound",
        message: format!("Security group rule {id} does not exist"),
    }
}

impl Networks {
    /// The project's default group, made (with its four rules) if it has none yet.
    pub(crate) async fn default_group_of(
        &self,
        conn: &mut Connection,
        project: &str,
    ) -> Result<String, NetworkError> {
        if let Some(id) = q::default_security_group(&mut *conn, project).await? {
            return Ok(id);
        }
        let now = now_micros();
        let id = new_id();
        q::insert_security_group(
            conn,
            &SecurityGroupRow {
                id: id.clone(),
                project_id: project.to_owned(),
                name: DEFAULT_GROUP.to_owned(),
                description: "Default security group".to_owned(),
                charged_to: None,
                created_at: now,
                updated_at: now,
                revision: 1,
            },
        )
        .await?;
        if !q::claim_default_security_group(conn, project, &id).await? {
            // Another request made it first: this one's goes.
            q::delete_security_group(conn, &id).await?;
            return q::default_security_group(&mut *conn, project)
                .await?
                .ok_or_else(|| NetworkError::Corrupt {
                    what: format!("project {project}'s default security group"),
                });
        }
        // Egress anywhere; ingress from the group's own members.
        for (direction, ethertype, remote) in [
            (Direction::Egress, IpVersion::V4, None),
            (Direction::Egress, IpVersion::V6, None),
            (Direction::Ingress, IpVersion::V4, Some(id.clone())),
            (Direction::Ingress, IpVersion::V6, Some(id.clone())),
        ] {
            q::insert_security_group_rule(
                conn,
                &SecurityGroupRuleRow {
                    id: new_id(),
                    security_group_id: id.clone(),
                    project_id: project.to_owned(),
                    direction: direction.as_str().to_owned(),
                    ethertype: ethertype_name(ethertype).to_owned(),
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    remote_ip_prefix: None,
                    remote_group_id: remote,
                    description: String::new(),
                    created_at: now,
                    updated_at: now,
                    revision: 1,
                },
            )
            .await?;
        }
        tracing::info!(project, group = %id, "default security group made");
        Ok(id)
    }

    /// The groups a port of `project` is put in: `requested` (each the project's), or
    /// the project's default group.
    pub(crate) async fn groups_for_port(
        &self,
        conn: &mut Connection,
        project: &str,
        requested: Option<&[String]>,
    ) -> Result<Vec<String>, NetworkError> {
        let Some(requested) = requested else {
            return Ok(vec![self.default_group_of(conn, project).await?]);
        };
        let mut groups = BTreeSet::new();
        for id in requested {
            match q::get_security_group(&mut *conn, id).await? {
                Some(row) if row.project_id == project => {
                    groups.insert(row.id);
                }
                _ => return Err(no_group(id)),
            }
        }
        Ok(groups.into_iter().collect())
    }

    pub async fn create_security_group(
        &self,
        caller: &AuthContext,
        new: NewSecurityGroup,
    ) -> Result<SecurityGroup, NetworkError> {
        let own = project_of(caller)?;
        let project = new.project_id.clone().unwrap_or_else(|| own.to_owned());
        if project != own && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_security_group:tenant_id"));
        }
        check_text("name", &new.name)?;
        check_text("description", &new.description)?;
        if new.name == DEFAULT_GROUP {
            return Err(NetworkError::bad_request(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            ));
        }
        let charged = project == own;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        // Its project has a default group before any other.
        self.default_group_of(&mut tx, &project).await?;
        if charged {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(
                        &project,
                        &caller.user_id,
                        SECURITY_GROUP_RESOURCE,
                        1,
                    )],
                )
                .await
                .map_err(|e| NetworkError::quota("security_group", e))?;
        }
        let row = SecurityGroupRow {
            id: new_id(),
            project_id: project,
            name: new.name,
            description: new.description,
            charged_to: charged.then(|| caller.user_id.clone()),
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        q::insert_security_group(&mut tx, &row).await?;
        // A new group lets anything out, as Neutron's do.
        let mut rules = Vec::new();
        for ethertype in [IpVersion::V4, IpVersion::V6] {
            let rule_row = SecurityGroupRuleRow {
                id: new_id(),
                security_group_id: row.id.clone(),
                project_id: row.project_id.clone(),
                direction: Direction::Egress.as_str().to_owned(),
                ethertype: ethertype_name(ethertype).to_owned(),
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote_ip_prefix: None,
                remote_group_id: None,
                description: String::new(),
                created_at: now,
                updated_at: now,
                revision: 1,
            };
            q::insert_security_group_rule(&mut tx, &rule_row).await?;
            rules.push(rule(rule_row)?);
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a security group's creation"))?;
        tracing::info!(group = %row.id, project = %row.project_id, "security group created");
        Ok(group(row, rules))
    }

    /// The caller's groups (every project's for an administrator); the caller's project
    /// gets its default group first, as Neutron's listing does.
    pub async fn security_groups(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<SecurityGroup>, NetworkError> {
        let project = project_of(caller)?;
        {
            let mut tx = self.db.begin().await?;
            self.default_group_of(&mut tx, project).await?;
            tx.commit()
                .await
                .map_err(DbError::query("commit a default security group"))?;
        }
        let scope = (!caller.is_cloud_admin()).then_some(project);
        let rows = q::list_security_groups(self.db.pool(), scope).await?;
        let all_rules = self.visible_rules(caller).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let rules = all_rules
                    .iter()
                    .filter(|r| r.security_group_id == row.id)
                    .cloned()
                    .collect();
                group(row, rules)
            })
            .collect())
    }

    async fn visible_group_row(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<SecurityGroupRow, NetworkError> {
        project_of(caller)?;
        match q::get_security_group(self.db.pool(), id).await? {
            Some(row) if owns(caller, &row.project_id) => Ok(row),
            _ => Err(no_group(id)),
        }
    }

    pub async fn security_group(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<SecurityGroup, NetworkError> {
        let row = self.visible_group_row(caller, id).await?;
        let rules = q::security_group_rules(self.db.pool(), Some(id))
            .await?
            .into_iter()
            .map(rule)
            .collect::<Result<_, _>>()?;
        Ok(group(row, rules))
    }

    pub async fn update_security_group(
        &self,
        caller: &AuthContext,
        id: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<SecurityGroup, NetworkError> {
        let mut row = self.visible_group_row(caller, id).await?;
        if let Some(name) = name {
            check_text("name", &name)?;
            let is_default = q::default_security_group(self.db.pool(), &row.project_id).await?
                == Some(row.id.clone());
            if is_default && name != DEFAULT_GROUP {
                return Err(NetworkError::bad_request(
                    "SecurityGroupCannotUpdateDefault",
                    "Updating default security group not allowed.",
                ));
            }
            row.name = name;
        }
        if let Some(description) = description {
            check_text("description", &description)?;
            row.description = description;
        }
        row.updated_at = now_micros();
        row.revision += 1;
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        if !q::update_security_group(&mut conn, &row).await? {
            return Err(NetworkError::conflict(
                "Conflict",
                format!("Security group {id} was changed meanwhile; try again."),
            ));
        }
        drop(conn);
        self.security_group(caller, id).await
    }

    pub async fn delete_security_group(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<(), NetworkError> {
        let row = self.visible_group_row(caller, id).await?;
        let mut tx = self.db.begin().await?;
        if !q::lock_security_group(&mut tx, id).await? {
            return Err(no_group(id));
        }
        let is_default =
            q::default_security_group(&mut *tx, &row.project_id).await? == Some(row.id.clone());
        if is_default && !caller.is_cloud_admin() {
            return Err(NetworkError::conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        if q::count_group_ports(&mut *tx, id).await? > 0 {
            return Err(NetworkError::conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use."),
            ));
        }
        q::delete_security_group(&mut tx, id).await?;
        if let Some(user) = &row.charged_to {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(
                        &row.project_id,
                        user,
                        SECURITY_GROUP_RESOURCE,
                        -1,
                    )],
                )
                .await
                .map_err(NetworkError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a security group's deletion"))?;
        tracing::info!(group = %id, "security group deleted");
        Ok(())
    }

    pub async fn create_security_group_rule(
        &self,
        caller: &AuthContext,
        new: NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule, NetworkError> {
        let group_row = self
            .visible_group_row(caller, &new.security_group_id)
            .await?;
        check_text("description", &new.description)?;
        let protocol = match new.protocol.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let known = protocol_number(text).is_some() || text.eq_ignore_ascii_case("any");
                if !known {
                    return Err(NetworkError::bad_request(
                        "SecurityGroupRuleInvalidProtocol",
                        format!(
                            "Security group rule protocol {text} not supported. Only protocol \
                             values [None, 'tcp', 'udp', 'icmp', 'icmpv6', 'sctp', …] and \
                             integer representations [0 to 255] are supported."
                        ),
                    ));
                }
                (!text.eq_ignore_ascii_case("any")).then(|| text.to_ascii_lowercase())
            }
        };
        let number = protocol.as_deref().and_then(protocol_number);
        check_ports(number, new.port_range_min, new.port_range_max)?;
        if number == Some(1) && new.ethertype == IpVersion::V6
            || number == Some(58) && new.ethertype == IpVersion::V4
        {
            return Err(NetworkError::bad_request(
                "SecurityGroupEthertypeConflictWithProtocol",
                format!(
                    "Invalid ethertype {} for protocol {}.",
                    ethertype_name(new.ethertype),
                    protocol.as_deref().unwrap_or_default()
                ),
            ));
        }
        if new.remote_ip_prefix.is_some() && new.remote_group_id.is_some() {
            return Err(NetworkError::bad_request(
                "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                "Only remote_ip_prefix or remote_group_id may be provided.",
            ));
        }
        let remote_ip_prefix = match &new.remote_ip_prefix {
            Some(text) => {
                let cidr = prefix(text)?;
                if cidr.version() != new.ethertype {
                    return Err(NetworkError::bad_request(
                        "SecurityGroupRuleParameterConflict",
                        format!(
                            "Conflicting value ethertype {} for CIDR {text}",
                            ethertype_name(new.ethertype)
                        ),
                    ));
                }
                Some(cidr.to_string())
            }
            None => None,
        };
        if let Some(remote) = &new.remote_group_id {
            self.visible_group_row(caller, remote).await?;
        }
        let now = now_micros();
        let row = SecurityGroupRuleRow {
            id: new_id(),
            security_group_id: group_row.id.clone(),
            project_id: group_row.project_id.clone(),
            direction: new.direction.as_str().to_owned(),
            ethertype: ethertype_name(new.ethertype).to_owned(),
            protocol,
            port_range_min: new.port_range_min.map(i64::from),
            port_range_max: new.port_range_max.map(i64::from),
            remote_ip_prefix,
            remote_group_id: new.remote_group_id.clone(),
            description: new.description.clone(),
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        let mut tx = self.db.begin().await?;
        if !q::lock_security_group(&mut tx, &group_row.id).await? {
            return Err(no_group(&group_row.id));
        }
        let same = |other: &SecurityGroupRuleRow| {
            other.direction == row.direction
                && other.ethertype == row.ethertype
                && other.protocol.as_deref().and_then(protocol_number)
                    == row.protocol.as_deref().and_then(protocol_number)
                && other.port_range_min == row.port_range_min
                && other.port_range_max == row.port_range_max
                && other.remote_ip_prefix == row.remote_ip_prefix
                && other.remote_group_id == row.remote_group_id
        };
        if let Some(existing) = q::security_group_rules(&mut *tx, Some(&group_row.id))
            .await?
            .into_iter()
            .find(same)
        {
            return Err(NetworkError::conflict(
                "SecurityGroupRuleExists",
                format!(
                    "Security group rule already exists. Rule id is {}.",
                    existing.id
                ),
            ));
        }
        q::insert_security_group_rule(&mut tx, &row).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a security group rule"))?;
        tracing::info!(rule = %row.id, group = %row.security_group_id, "security group rule created");
        rule(row)
    }

    /// The rules of the caller's groups (every group's for an administrator).
    pub async fn security_group_rules(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<SecurityGroupRule>, NetworkError> {
        project_of(caller)?;
        self.visible_rules(caller).await
    }

    async fn visible_rules(
        &self,
        caller: &AuthContext,
    ) -> Result<Vec<SecurityGroupRule>, NetworkError> {
        q::security_group_rules(self.db.pool(), None)
            .await?
            .into_iter()
            .filter(|row| owns(caller, &row.project_id))
            .map(rule)
            .collect()
    }

    pub async fn security_group_rule(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<SecurityGroupRule, NetworkError> {
        project_of(caller)?;
        match q::get_security_group_rule(self.db.pool(), id).await? {
            Some(row) if owns(caller, &row.project_id) => rule(row),
            _ => Err(no_rule(id)),
        }
    }

    /// Deletes a rule; returns its group.
    pub async fn delete_security_group_rule(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<String, NetworkError> {
        let found = self.security_group_rule(caller, id).await?;
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        if !q::delete_security_group_rule(&mut conn, id).await? {
            return Err(no_rule(id));
        }
        tracing::info!(rule = %id, group = %found.security_group_id, "security group rule deleted");
        Ok(found.security_group_id)
    }

    /// The nodes whose rules change with group `group`'s.
    pub async fn hosts_of_group(&self, group: &str) -> Result<Vec<String>, NetworkError> {
        Ok(q::hosts_of_group(self.db.pool(), group).await?)
    }
}

fn prefix(text: &str) -> Result<Cidr, NetworkError> {
    let text = text.trim();
    let invalid = || NetworkError::invalid(format!("'{text}' is not a valid IP prefix"));
    // Host bits are dropped, as Neutron normalises the prefix.
    match Cidr::parse(text) {
        Ok(cidr) => Ok(cidr),
        Err(CidrError::HostBits { recommended }) => {
            Cidr::parse(&recommended).map_err(|_| invalid())
        }
        Err(_) => Err(invalid()),
    }
}

/// Neutron's checks of a rule's port range.
fn check_ports(
    protocol: Option<u8>,
    min: Option<u16>,
    max: Option<u16>,
) -> Result<(), NetworkError> {
    let invalid =
        |message: String| NetworkError::bad_request("SecurityGroupInvalidPortValue", message);
    match protocol {
        Some(6 | 17 | 132 | 136) => {
            if let (Some(min), Some(max)) = (min, max)
                && (min == 0 || min > max)
            {
                return Err(NetworkError::bad_request(
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                ));
            }
            if min.is_none() != max.is_none() {
                return Err(invalid(
                    "port_range_min and port_range_max are given together".to_owned(),
                ));
            }
        }
        Some(1 | 58) => {
            if min.is_none() && max.is_some() {
                return Err(invalid(
                    "ICMP code (port-range-max) 0 is provided but ICMP type (port-range-min) is \
                     missing."
                        .to_owned(),
                ));
            }
            if min.is_some_and(|t| t > 255) || max.is_some_and(|c| c > 255) {
                return Err(invalid("Invalid value for ICMP type or code".to_owned()));
            }
        }
        _ if min.is_some() || max.is_some() => {
            return Err(invalid(
                "Ports may only be given for TCP, UDP, SCTP and ICMP".to_owned(),
            ));
        }
        _ => {}
    }
    Ok(())
}
