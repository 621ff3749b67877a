//! Rebuilding a server (Nova's `rebuild`): a fresh root disk from an image (the one it
//! has or another), a new administrator password, and optionally a new name and metadata;
//! its flavor, NICs, key and user data stay. Whatever the guest wrote is gone. The server
//! shows REBUILD until its node reports the rebuilt VM, running if it ran before (or was
//! in ERROR), stopped if it was stopped, as Nova does.

use std::collections::BTreeMap;

use nefos_db::compute as q;
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;
use nefos_image::{Caller, ImageError};
use nefos_node_api::{ConfigDriveLayout, GuestConfig, ImageContent, PowerState};

use super::Asked;
use super::charges;
use super::create::{check_metadata, check_name, hostname, random_password};
use super::sagas::rebuild::{RebuildParams, RebuildSaga};
use super::state::{self, task, vm};
use super::{Server, actions::check_lock};
use crate::{Compute, ComputeError};

/// What a rebuild changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rebuild {
    pub image_ref: String,
    pub name: Option<String>,
    pub admin_pass: Option<String>,
    /// Replaces the server's metadata when given.
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Compute {
    /// Rebuilds a server; the server as it is now, and its new administrator password.
    pub async fn rebuild_server(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
        rebuild: Rebuild,
    ) -> Result<(Server, String), ComputeError> {
        let server = self.server(caller, id).await?;
        check_lock(caller, &server)?;
        let node = self.check_allowed(&server, state::REBUILD)?;
        if let Some(name) = &rebuild.name {
            check_name(name)?;
        }
        if let Some(metadata) = &rebuild.metadata {
            check_metadata(metadata)?;
        }
        let image = match self
            .inner
            .images
            .boot_source(Caller::new(caller), &rebuild.image_ref)
            .await
        {
            Ok(image) => image,
            Err(ImageError::NotFound { .. }) => {
                return Err(ComputeError::invalid("Can not find requested image"));
            }
            Err(ImageError::Invalid { reason, .. } | ImageError::Conflict { reason }) => {
                return Err(ComputeError::invalid(reason));
            }
            Err(error) => return Err(ComputeError::Image(error)),
        };
        image
            .check_flavor(server.flavor.disk_gib << 30, server.flavor.ram_mib)
            .map_err(|error| ComputeError::invalid(error.to_string()))?;
        let row = q::get_server(self.db().pool(), id)
            .await?
            .ok_or_else(|| ComputeError::no_server(id))?;
        let admin_pass = rebuild.admin_pass.clone().unwrap_or_else(random_password);
        let name = rebuild.name.clone().unwrap_or_else(|| server.name.clone());
        let guest = GuestConfig {
            hostname: hostname(&name, id),
            layout: ConfigDriveLayout::OpenStack,
            admin_pass: Some(admin_pass.clone()),
            public_keys: row
                .key_name
                .clone()
                .zip(row.key_data.clone())
                .into_iter()
                .collect(),
            user_data: row.user_data.clone(),
        };
        let power = if server.vm_state == vm::STOPPED {
            PowerState::Stopped
        } else {
            PowerState::Running
        };

        let mut tx = self.db().begin().await?;
        self.begin_task(&mut tx, &server, task::REBUILDING, state::REBUILD)
            .await?;
        let now = now_micros();
        // A server rebuilt from ERROR after a stop runs again: its active resources are
        // charged first, or the rebuild is refused.
        if power == PowerState::Running && q::set_active_charged(&mut *tx, id, true, now).await? {
            let provisions = charges::activity(
                &server.project_id,
                &server.user_id,
                server.flavor.size(),
                1,
                1,
            );
            self.inner
                .quotas
                .charge_in(&mut tx, &provisions)
                .await
                .map_err(charges::refusal)?;
        }
        if rebuild.name.is_some() {
            q::update_server_fields(&mut *tx, id, rebuild.name.as_deref(), None, now).await?;
        }
        if let Some(metadata) = &rebuild.metadata {
            q::put_metadata(&mut tx, id, metadata, true).await?;
        }
        let generation = u64::try_from(q::take_generations(&mut tx, id, 1).await?).unwrap_or(0);
        let params = RebuildParams {
            server_id: id.to_owned(),
            node_id: node,
            generation,
            image_id: image.image_id.clone(),
            name: name.clone(),
            image: ImageContent {
                size: image.size,
                block_size: nefos_blocks::BLOCK_SIZE as u64,
                hashes: image.hashes.iter().map(ToString::to_string).collect(),
                format: image.format,
            },
            guest,
            power,
            request_id: request_id.to_owned(),
        };
        let asked = Asked {
            server: &server,
            user_id: &caller.user_id,
            request_id,
            action: "rebuild",
        };
        self.record_and_run::<RebuildSaga>(tx, asked, &params)
            .await?;
        tracing::info!(server = %id, image = %image.image_id, "rebuilding");
        Ok((self.server(caller, id).await?, admin_pass))
    }
}
