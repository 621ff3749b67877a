//! Server images (Nova's `createImage`): a private image in the image service, made of the
//! server's root disk as its node exports it (one self-contained qcow2; a running guest is
//! paused for the copy). The image exists, queued, when the request returns; the saga
//! fills it and it becomes active, or is deleted if that fails.

use std::collections::BTreeMap;

use nefos_db::time::now_micros;
use nefos_identity::{AuthContext, ProjectKind, Role, ScopedProject};
use nefos_image::{Caller, NewImage, Visibility};

use super::Asked;
use super::sagas::snapshot::{SnapshotParams, SnapshotSaga};
use super::state::{self, task};
use crate::{Compute, ComputeError};

/// Who a snapshot's upload acts as: the user who asked, as a member of the server's
/// project. Kept in the saga, so an upload resumed by another process acts the same.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActingUser {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    pub project_kind: String,
}

impl ActingUser {
    fn of(caller: &AuthContext, project_id: &str) -> ActingUser {
        // An administrator's token is scoped elsewhere: only the id is the server's.
        let scoped = caller.project.as_ref().filter(|p| p.id == project_id);
        ActingUser {
            user_id: caller.user_id.clone(),
            user_name: caller.user_name.clone(),
            project_id: project_id.to_owned(),
            project_name: scoped.map(|p| p.name.clone()).unwrap_or_default(),
            project_kind: scoped
                .map_or(ProjectKind::Regular, |p| p.kind)
                .as_str()
                .to_owned(),
        }
    }

    /// The context the image service sees.
    pub(crate) fn context(&self) -> AuthContext {
        let kind = match self.project_kind.as_str() {
            "base" => ProjectKind::Base,
            // Never more than a member: an administrator's snapshot is made as a member
            // of the server's project.
            _ => ProjectKind::Regular,
        };
        AuthContext {
            user_id: self.user_id.clone(),
            user_name: self.user_name.clone(),
            project: Some(ScopedProject {
                id: self.project_id.clone(),
                name: self.project_name.clone(),
                kind,
            }),
            roles: vec![Role::Member],
            methods: vec!["saga".to_owned()],
            issued_at: now_micros() / 1_000_000,
            expires_at: now_micros() / 1_000_000 + 3600,
            audit_id: String::new(),
        }
    }
}

impl Compute {
    /// Makes an image of a server's root disk; returns the image's id.
    pub async fn create_server_image(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
        name: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<String, ComputeError> {
        let server = self.server(caller, id).await?;
        let node = self.check_allowed(&server, state::CREATE_IMAGE)?;
        if name.trim().is_empty() || name.chars().count() > 255 {
            return Err(ComputeError::invalid(
                "Invalid input for field/attribute name. The name must be 1 to 255 characters",
            ));
        }
        let acting = ActingUser::of(caller, &server.project_id);
        let context = acting.context();
        let mut all = properties.clone();
        all.insert("image_type".to_owned(), "snapshot".to_owned());
        all.insert("instance_uuid".to_owned(), server.id.clone());
        all.insert("user_id".to_owned(), caller.user_id.clone());
        if let Some(base) = &server.image_id {
            all.insert("base_image_ref".to_owned(), base.clone());
        }
        let image = self
            .inner
            .images
            .create(
                Caller::new(&context),
                NewImage {
                    id: None,
                    owner: None,
                    name: Some(name.to_owned()),
                    visibility: Some(Visibility::Private),
                    protected: false,
                    os_hidden: false,
                    disk_format: Some("qcow2".to_owned()),
                    container_format: Some("bare".to_owned()),
                    min_disk: server.flavor.disk_gib,
                    min_ram: 0,
                    tags: Vec::new(),
                    properties: all,
                },
            )
            .await
            .map_err(|error| match error {
                nefos_image::ImageError::Invalid { .. } => ComputeError::invalid(error.to_string()),
                other => ComputeError::Image(other),
            })?;

        let params = SnapshotParams {
            server_id: id.to_owned(),
            node_id: node,
            image_id: image.id.clone(),
            acting,
            request_id: request_id.to_owned(),
        };
        let recorded = async {
            let mut tx = self.db().begin().await?;
            self.begin_task(&mut tx, &server, task::IMAGE_SNAPSHOT, state::CREATE_IMAGE)
                .await?;
            let asked = Asked {
                server: &server,
                user_id: &caller.user_id,
                request_id,
                action: "createImage",
            };
            self.record_and_run::<SnapshotSaga>(tx, asked, &params)
                .await
        }
        .await;
        if let Err(error) = recorded {
            // Nothing will fill the image: it goes.
            if let Err(failure) = self
                .inner
                .images
                .delete(Caller::new(&context), &image.id)
                .await
            {
                tracing::warn!(image = %image.id, error = %failure, "cannot delete an image no server fills");
            }
            return Err(error);
        }
        Ok(image.id)
    }
}
