//! Who is asking, and what that lets them do to an image.

use nefos_db::image::Viewer;
use nefos_identity::{AuthContext, Role};

use crate::{Image, ImageError, Visibility};

/// The caller of an image operation: a token's project and roles.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub(crate) context: &'a AuthContext,
}

impl<'a> Caller<'a> {
    pub fn new(context: &'a AuthContext) -> Self {
        Caller { context }
    }

    pub fn context(&self) -> &'a AuthContext {
        self.context
    }

    /// The project the caller acts for (Glance's `owner` of what it creates).
    pub fn project_id(&self) -> Option<&'a str> {
        self.context.project_id()
    }

    pub fn is_admin(&self) -> bool {
        self.context.is_cloud_admin()
    }

    pub(crate) fn viewer(&self) -> Viewer<'a> {
        Viewer {
            project_id: self.project_id(),
            admin: self.is_admin(),
        }
    }

    /// Whether the caller may change things of `project` (its images, their members).
    pub(crate) fn writes_for(&self, project: &str) -> bool {
        self.is_admin()
            || (self.project_id() == Some(project)
                && self
                    .context
                    .roles
                    .iter()
                    .any(|r| matches!(r, Role::Admin | Role::Member)))
    }

    /// The project whose image this call would create: the caller's own, or one an
    /// administrator names.
    pub(crate) fn owner_for_new(&self, requested: Option<&str>) -> Result<String, ImageError> {
        let own = self.project_id();
        let owner = match requested {
            Some(owner) if Some(owner) != own && !self.is_admin() => {
                return Err(ImageError::forbidden(
                    "You are not permitted to create images owned by another project.",
                ));
            }
            Some(owner) => owner,
            None => own.ok_or_else(|| {
                ImageError::forbidden("Images belong to projects: use a project-scoped token.")
            })?,
        };
        if !self.writes_for(owner) {
            return Err(ImageError::forbidden(
                "You are not permitted to create images in this project.",
            ));
        }
        Ok(owner.to_owned())
    }

    /// Refuses a change to `image` unless the caller writes for its owner. The image is
    /// visible to the caller already (a missing one was a 404 before this).
    pub(crate) fn require_owner(&self, image: &Image, action: &str) -> Result<(), ImageError> {
        if self.writes_for(&image.owner) {
            Ok(())
        } else {
            Err(ImageError::forbidden(format!(
                "You are not permitted to {action} image {}.",
                image.id
            )))
        }
    }

    /// Glance publishes images only for administrators (its `publicize_image` rule).
    pub(crate) fn may_set_visibility(&self, visibility: Visibility) -> Result<(), ImageError> {
        if visibility == Visibility::Public && !self.is_admin() {
            return Err(ImageError::forbidden(
                "You are not permitted to publicize images: use community visibility to offer an image to everyone.",
            ));
        }
        Ok(())
    }
}
