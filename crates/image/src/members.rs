//! Members of shared images: the owner offers an image to a project, the project accepts
//! or rejects it. Only an accepted image is listed for the member; any member sees it by
//! id (it must, to answer).

use nefos_db::image::{self as q, MemberRow};
use nefos_db::time::now_micros;

use crate::{Caller, Image, ImageError, Images, Member, MemberStatus, Visibility};

impl Images {
    /// The members of an image: all of them for its owner, the caller's own entry for a
    /// member.
    pub async fn members(&self, caller: Caller<'_>, id: &str) -> Result<Vec<Member>, ImageError> {
        let image = self.get(caller, id).await?;
        require_shared(&image)?;
        let rows = q::members(self.db.pool(), id).await?;
        let owner_view = caller.writes_for(&image.owner) || caller.is_admin();
        rows.into_iter()
            .filter(|row| owner_view || caller.project_id() == Some(row.member_id.as_str()))
            .map(member_from_row)
            .collect()
    }

    pub async fn member(
        &self,
        caller: Caller<'_>,
        id: &str,
        member_id: &str,
    ) -> Result<Member, ImageError> {
        let image = self.get(caller, id).await?;
        require_shared(&image)?;
        let visible = caller.writes_for(&image.owner)
            || caller.is_admin()
            || caller.project_id() == Some(member_id);
        let row = q::member(self.db.pool(), id, member_id)
            .await?
            .filter(|_| visible)
            .ok_or_else(|| member_not_found(id, member_id))?;
        member_from_row(row)
    }

    /// Offers an image to a project (the owner only; the image must be `shared`).
    pub async fn add_member(
        &self,
        caller: Caller<'_>,
        id: &str,
        member_id: &str,
    ) -> Result<Member, ImageError> {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "share")?;
        require_shared(&image)?;
        if member_id == image.owner {
            return Err(ImageError::invalid(
                "member",
                "the owner of an image cannot be its member",
            ));
        }
        if nefos_db::identity::get_project(self.db.pool(), member_id)
            .await?
            .is_none()
        {
            return Err(ImageError::invalid(
                "member",
                format!("there is no project {member_id}"),
            ));
        }
        let now = now_micros();
        let row = MemberRow {
            image_id: id.to_owned(),
            member_id: member_id.to_owned(),
            status: MemberStatus::Pending.as_str().to_owned(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin().await?;
        q::insert_member(&mut tx, &row)
            .await
            .map_err(|error| match error {
                nefos_db::DbError::Conflict { .. } => ImageError::conflict(format!(
                    "Member {member_id} already associated with image {id}."
                )),
                other => other.into(),
            })?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an image member"))?;
        member_from_row(row)
    }

    /// A member's answer (the member project only).
    pub async fn set_member_status(
        &self,
        caller: Caller<'_>,
        id: &str,
        member_id: &str,
        status: MemberStatus,
    ) -> Result<Member, ImageError> {
        let image = self.get(caller, id).await?;
        require_shared(&image)?;
        let answers_for_itself =
            caller.project_id() == Some(member_id) && caller.writes_for(member_id);
        if !answers_for_itself && !caller.is_admin() {
            // The owner sees its members, so for it this is a refusal; anyone else learns
            // nothing about who the members are.
            if caller.writes_for(&image.owner) {
                return Err(ImageError::forbidden(
                    "Only the member may accept or reject an image shared with it.",
                ));
            }
            return Err(member_not_found(id, member_id));
        }
        if !q::set_member_status(self.db.pool(), id, member_id, status.as_str()).await? {
            return Err(member_not_found(id, member_id));
        }
        self.member(caller, id, member_id).await
    }

    /// Withdraws an image from a project (the owner only).
    pub async fn remove_member(
        &self,
        caller: Caller<'_>,
        id: &str,
        member_id: &str,
    ) -> Result<(), ImageError> {
        let image = self.get(caller, id).await?;
        if !caller.writes_for(&image.owner) {
            return Err(member_not_found(id, member_id));
        }
        require_shared(&image)?;
        if !q::delete_member(self.db.pool(), id, member_id).await? {
            return Err(member_not_found(id, member_id));
        }
        Ok(())
    }
}

fn require_shared(image: &Image) -> Result<(), ImageError> {
    if image.visibility == Visibility::Shared {
        Ok(())
    } else {
        Err(ImageError::forbidden(format!(
            "Only shared images have members; image {} is {}.",
            image.id,
            image.visibility.as_str()
        )))
    }
}

fn member_not_found(image: &str, member: &str) -> ImageError {
    ImageError::MemberNotFound {
        image: image.to_owned(),
        member: member.to_owned(),
    }
}

fn member_from_row(row: MemberRow) -> Result<Member, ImageError> {
    Ok(Member {
        status: MemberStatus::parse(&row.status)?,
        image_id: row.image_id,
        member_id: row.member_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
