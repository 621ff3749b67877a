//! Images and members in Glance's JSON.

use nefos_db::time::from_micros;
use nefos_image::{Image, Member};
use nefos_image_api::glance::{self, ImageView, MemberView};

/// Glance's timestamps: ISO 8601 to the second, UTC, `Z`.
pub(crate) fn glance_time(micros: i64) -> String {
    from_micros(micros).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn image_view(image: &Image) -> ImageView {
    ImageView {
        id: image.id.clone(),
        name: image.name.clone(),
        status: image.status.as_str().to_owned(),
        visibility: image.visibility.as_str().to_owned(),
        protected: image.protected,
        os_hidden: image.os_hidden,
        checksum: image.checksum.clone(),
        os_hash_algo: image.os_hash_algo.clone(),
        os_hash_value: image.os_hash_value.clone(),
        owner: image.owner.clone(),
        size: image.size,
        virtual_size: image.virtual_size,
        min_ram: image.min_ram,
        min_disk: image.min_disk,
        disk_format: image.disk_format.clone(),
        container_format: image.container_format.clone(),
        created_at: glance_time(image.created_at),
        updated_at: glance_time(image.updated_at),
        tags: image.tags.clone(),
        self_link: nefos_image_api::fill(glance::IMAGE, &[&image.id]),
        file: nefos_image_api::fill(glance::IMAGE_FILE, &[&image.id]),
        schema: glance::SCHEMA_IMAGE.to_owned(),
        properties: image
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    }
}

pub(crate) fn member_view(member: &Member) -> MemberView {
    MemberView {
        image_id: member.image_id.clone(),
        member_id: member.member_id.clone(),
        status: member.status.as_str().to_owned(),
        created_at: glance_time(member.created_at),
        updated_at: glance_time(member.updated_at),
        schema: glance::SCHEMA_MEMBER.to_owned(),
    }
}
