//! Flavors: the sizes servers come in, managed by administrators. A flavor is public, or
//! private and open to the projects on its access list; its extra specs are free-form
//! key/value pairs Nova clients show and schedulers may read.

use std::collections::BTreeMap;

use nefos_db::DbError;
use nefos_db::compute::{self as q, FlavorRow};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use crate::{Compute, ComputeError};

/// A flavor as users see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_gib: u64,
    pub ephemeral_gib: u64,
    pub swap_mib: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
}

/// A flavor to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFlavor {
    /// Chosen by the administrator, or a new UUID.
    pub id: Option<String>,
    pub name: String,
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_gib: u64,
    pub ephemeral_gib: u64,
    pub swap_mib: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub description: Option<String>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn flavor_of(row: FlavorRow, extra_specs: BTreeMap<String, String>) -> Flavor {
    Flavor {
        id: row.id,
        name: row.name,
        vcpus: u32::try_from(row.vcpus).unwrap_or(0),
        ram_mib: to_u64(row.ram_mib),
        disk_gib: to_u64(row.disk_gib),
        ephemeral_gib: to_u64(row.ephemeral_gib),
        swap_mib: to_u64(row.swap_mib),
        rxtx_factor: row.rxtx_factor,
        is_public: row.is_public,
        disabled: row.disabled,
        description: row.description,
        extra_specs,
    }
}

/// Nova's rule for flavor and keypair names alike: printable, not blank.
fn check_name(name: &str) -> Result<(), ComputeError> {
    if name.trim().is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ComputeError::invalid(format!(
            "Invalid input for field/attribute name. Value: {name}. The name must be 1 to 255 \
             printable characters and not only spaces"
        )));
    }
    Ok(())
}

fn require_admin(caller: &AuthContext) -> Result<(), ComputeError> {
    if caller.is_cloud_admin() {
        Ok(())
    } else {
        Err(ComputeError::forbidden(
            "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.",
        ))
    }
}

impl Compute {
    /// The flavors the caller may use: public ones, and private ones open to its project;
    /// every flavor for an administrator. Disabled flavors only for administrators.
    pub async fn list_flavors(&self, caller: &AuthContext) -> Result<Vec<Flavor>, ComputeError> {
        let admin = caller.is_cloud_admin();
        let rows = q::list_flavors(self.db().pool(), caller.project_id(), admin).await?;
        let mut specs = q::all_extra_specs(self.db().pool()).await?;
        Ok(rows
            .into_iter()
            .filter(|row| admin || !row.disabled)
            .map(|row| {
                let extra = specs.remove(&row.id).unwrap_or_default();
                flavor_of(row, extra)
            })
            .collect())
    }

    /// Whether any flavor exists (`nefos up` creates the defaults in a cloud with none).
    pub async fn has_flavors(&self) -> Result<bool, ComputeError> {
        Ok(!q::list_flavors(self.db().pool(), None, true)
            .await?
            .is_empty())
    }

    /// A flavor the caller may see (administrators see all; a private flavor not open to
    /// the caller's project is not found).
    pub async fn flavor(&self, caller: &AuthContext, id: &str) -> Result<Flavor, ComputeError> {
        let row = q::get_flavor(self.db().pool(), id)
            .await?
            .ok_or_else(|| ComputeError::no_flavor(id))?;
        if !caller.is_cloud_admin() && !row.is_public {
            let open = q::flavor_access(self.db().pool(), id).await?;
            if !caller
                .project_id()
                .is_some_and(|p| open.iter().any(|o| o == p))
            {
                return Err(ComputeError::no_flavor(id));
            }
        }
        let specs = q::extra_specs(self.db().pool(), id).await?;
        Ok(flavor_of(row, specs))
    }

    /// Creates a flavor (administrators only, or the operator with `None`).
    pub async fn create_flavor(
        &self,
        caller: Option<&AuthContext>,
        new: NewFlavor,
    ) -> Result<Flavor, ComputeError> {
        if let Some(caller) = caller {
            require_admin(caller)?;
        }
        check_name(&new.name)?;
        if new.vcpus == 0 || new.ram_mib == 0 {
            return Err(ComputeError::invalid(
                "Invalid input for field/attribute flavor. vcpus and ram must be at least 1",
            ));
        }
        let id = new.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_control() || c == '/') {
            return Err(ComputeError::invalid(format!("Invalid flavor id {id:?}")));
        }
        let row = FlavorRow {
            id: id.clone(),
            name: new.name.clone(),
            vcpus: i64::from(new.vcpus),
            ram_mib: to_i64(new.ram_mib),
            disk_gib: to_i64(new.disk_gib),
            ephemeral_gib: to_i64(new.ephemeral_gib),
            swap_mib: to_i64(new.swap_mib),
            rxtx_factor: new.rxtx_factor,
            is_public: new.is_public,
            disabled: false,
            description: new.description.clone(),
            created_at: now_micros(),
        };
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        match q::insert_flavor(&mut conn, &row).await {
            Ok(()) => {}
            Err(DbError::Conflict { .. }) => {
                let taken = q::get_flavor(self.db().pool(), &id).await?.is_some();
                return Err(ComputeError::conflict(if taken {
                    format!("Flavor with ID {id} already exists.")
                } else {
                    format!("Flavor with name {} already exists.", new.name)
                }));
            }
            Err(error) => return Err(error.into()),
        }
        tracing::info!(flavor = %id, name = %new.name, "flavor created");
        Ok(flavor_of(row, BTreeMap::new()))
    }

    pub async fn set_flavor_description(
        &self,
        caller: &AuthContext,
        id: &str,
        description: Option<&str>,
    ) -> Result<Flavor, ComputeError> {
        require_admin(caller)?;
        if !q::update_flavor_description(self.db().pool(), id, description).await? {
            return Err(ComputeError::no_flavor(id));
        }
        self.flavor(caller, id).await
    }

    /// Deletes a flavor; servers of it keep their copy.
    pub async fn delete_flavor(&self, caller: &AuthContext, id: &str) -> Result<(), ComputeError> {
        require_admin(caller)?;
        if q::delete_flavor(self.db().pool(), id).await? {
            Ok(())
        } else {
            Err(ComputeError::no_flavor(id))
        }
    }

    pub async fn set_extra_specs(
        &self,
        caller: &AuthContext,
        id: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ComputeError> {
        require_admin(caller)?;
        self.flavor(caller, id).await?;
        for (key, value) in specs {
            if key.is_empty() || key.len() > 255 || value.len() > 255 {
                return Err(ComputeError::invalid(format!(
                    "Invalid extra spec {key:?}: keys are 1 to 255 characters, values at most 255"
                )));
            }
        }
        for (key, value) in specs {
            q::put_extra_spec(self.db().pool(), id, key, value).await?;
        }
        Ok(q::extra_specs(self.db().pool(), id).await?)
    }

    pub async fn delete_extra_spec(
        &self,
        caller: &AuthContext,
        id: &str,
        key: &str,
    ) -> Result<(), ComputeError> {
        require_admin(caller)?;
        self.flavor(caller, id).await?;
        if q::delete_extra_spec(self.db().pool(), id, key).await? {
            Ok(())
        } else {
            Err(ComputeError::not_found(format!(
                "Flavor {id} has no extra specs with key {key}."
            )))
        }
    }

    /// The projects a private flavor is open to.
    pub async fn flavor_access(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Vec<String>, ComputeError> {
        require_admin(caller)?;
        let flavor = self.flavor(caller, id).await?;
        if flavor.is_public {
            return Err(ComputeError::not_found(
                "Access list not available for public flavors.",
            ));
        }
        Ok(q::flavor_access(self.db().pool(), id).await?)
    }

    /// Opens (`open`) or closes a private flavor to `project`.
    pub async fn set_flavor_access(
        &self,
        caller: &AuthContext,
        id: &str,
        project: &str,
        open: bool,
    ) -> Result<Vec<String>, ComputeError> {
        let flavor = self.flavor(caller, id).await?;
        require_admin(caller)?;
        if flavor.is_public {
            return Err(ComputeError::conflict(
                "Can not add access to a public flavor.",
            ));
        }
        if open {
            if !q::add_flavor_access(self.db().pool(), id, project).await? {
                return Err(ComputeError::conflict(format!(
                    "Flavor access already exists for flavor {id} and project {project} combination."
                )));
            }
        } else if !q::remove_flavor_access(self.db().pool(), id, project).await? {
            return Err(ComputeError::not_found(format!(
                "Flavor access not found for {id} / {project} combination."
            )));
        }
        Ok(q::flavor_access(self.db().pool(), id).await?)
    }
}
