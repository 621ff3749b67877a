//! The resources quotas count, registered by the services that use them.

use nefos_db::quota::{self as q, ResourceRow};
use nefos_db::time::now_micros;
use nefos_identity::Caller;

use crate::{QuotaError, Quotas};

/// What a resource counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Bytes => "bytes",
        }
    }
}

/// A resource as a service declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSpec {
    pub name: &'static str,
    pub service: &'static str,
    pub unit: Unit,
    pub description: &'static str,
    /// The initial limit of every personal project.
    pub base_default: i64,
    /// The initial limit of a regular project whose grant omits the resource.
    pub project_default: i64,
}

const GIB: i64 = 1 << 30;

/// Object storage's resource.
pub const PITHOS_DISKSPACE: ResourceSpec = ResourceSpec {
    name: "pithos.diskspace",
    service: "pithos",
    unit: Unit::Bytes,
    description: "Storage space, every kept version counted",
    base_default: 20 * GIB,
    project_default: 0,
};

/// Compute's resources, as Synnefo's Cyclades names them.
pub const CYCLADES_RESOURCES: &[ResourceSpec] = &[
    ResourceSpec {
        name: "cyclades.vm",
        service: "cyclades",
        unit: Unit::Count,
        description: "Virtual machines",
        base_default: 2,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.cpu",
        service: "cyclades",
        unit: Unit::Count,
        description: "Virtual CPUs of running VMs",
        base_default: 4,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.ram",
        service: "cyclades",
        unit: Unit::Bytes,
        description: "RAM of running VMs",
        base_default: 4 * GIB,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.total_cpu",
        service: "cyclades",
        unit: Unit::Count,
        description: "Virtual CPUs of all VMs",
        base_default: 4,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.total_ram",
        service: "cyclades",
        unit: Unit::Bytes,
        description: "RAM of all VMs",
        base_default: 4 * GIB,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.disk",
        service: "cyclades",
        unit: Unit::Bytes,
        description: "Disk space of VMs and volumes",
        base_default: 40 * GIB,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.network.private",
        service: "cyclades",
        unit: Unit::Count,
        description: "Private networks",
        base_default: 2,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.port",
        service: "cyclades",
        unit: Unit::Count,
        description: "Network ports (each of a server's NICs is one)",
        base_default: 8,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.security_group",
        service: "cyclades",
        unit: Unit::Count,
        description: "Security groups besides each project's default",
        base_default: 10,
        project_default: 0,
    },
    ResourceSpec {
        name: "cyclades.floating_ip",
        service: "cyclades",
        unit: Unit::Count,
        description: "Floating IP addresses",
        base_default: 1,
        project_default: 0,
    },
];

/// A registered resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub service: String,
    pub unit: String,
    pub description: String,
    pub base_default: i64,
    pub project_default: i64,
}

impl From<ResourceRow> for Resource {
    fn from(row: ResourceRow) -> Self {
        Resource {
            name: row.name,
            service: row.service,
            unit: row.unit,
            description: row.description,
            base_default: row.base_default,
            project_default: row.project_default,
        }
    }
}

impl Quotas {
    /// Registers a service's resources; defaults an administrator changed are kept.
    pub async fn register_resources(&self, specs: &[ResourceSpec]) -> Result<(), QuotaError> {
        let now = now_micros();
        for spec in specs {
            let row = ResourceRow {
                name: spec.name.to_owned(),
                service: spec.service.to_owned(),
                unit: spec.unit.as_str().to_owned(),
                description: spec.description.to_owned(),
                base_default: spec.base_default,
                project_default: spec.project_default,
                registered_at: now,
            };
            q::register_resource(self.db.pool(), &row).await?;
        }
        Ok(())
    }

    pub async fn resources(&self) -> Result<Vec<Resource>, QuotaError> {
        Ok(q::list_resources(self.db.pool())
            .await?
            .into_iter()
            .map(Resource::from)
            .collect())
    }

    /// Changes a resource's defaults. Administrators only. A personal project without a
    /// limit of its own follows the new base default at once.
    pub async fn set_resource_defaults(
        &self,
        caller: Caller<'_>,
        name: &str,
        base_default: Option<i64>,
        project_default: Option<i64>,
    ) -> Result<Resource, QuotaError> {
        if !caller.is_admin() {
            return Err(QuotaError::not_allowed(
                "only administrators change resource defaults",
            ));
        }
        for value in [base_default, project_default].into_iter().flatten() {
            if value < 0 {
                return Err(QuotaError::invalid("limit", "must not be negative"));
            }
        }
        if !q::set_resource_defaults(self.db.pool(), name, base_default, project_default).await? {
            return Err(QuotaError::UnknownResource {
                resource: name.to_owned(),
            });
        }
        self.resources()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| QuotaError::UnknownResource {
                resource: name.to_owned(),
            })
    }
}
