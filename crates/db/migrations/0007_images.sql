-- Images (docs/design.md §2, docs/images.md): an image is an object of the storage service
-- with image metadata, as in Synnefo's Plankton. The bytes are never copied: an image names
-- the object version that holds them, and is an image only while that version is the
-- object's current one (deleting or overwriting the object unregisters it). Glance v2 and
-- Plankton serve the same rows. Portable SQL, as in 0001.

CREATE TABLE images (
    id               TEXT PRIMARY KEY,
    -- The owning project (Glance's `owner`, the account that holds the object).
    owner_id         TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- Glance allows an image without a name.
    name             TEXT @COLLATE_BYTES@,
    -- Glance's life cycle: queued, saving, uploading, importing, active, deactivated,
    -- killed. A deleted image is a deleted row.
    status           TEXT NOT NULL,
    -- public, private, shared or community.
    visibility       TEXT NOT NULL,
    protected        BOOLEAN NOT NULL,
    os_hidden        BOOLEAN NOT NULL,
    -- NULL until set (Glance allows setting them at any time before the upload).
    disk_format      TEXT,
    container_format TEXT,
    -- GiB and MiB, as Glance counts them.
    min_disk         BIGINT NOT NULL,
    min_ram          BIGINT NOT NULL,
    -- Known once the data is in: bytes, the disk's size as a guest sees it, MD5 (Glance's
    -- `checksum`) and the secure hash Glance calls `os_hash_value`.
    size             BIGINT,
    virtual_size     BIGINT,
    checksum         TEXT,
    os_hash_algo     TEXT,
    os_hash_value    TEXT,
    -- The object the image is: its container, name and version. NULL while no data is in.
    container_id     TEXT REFERENCES containers (id) ON DELETE CASCADE,
    object_name      TEXT @COLLATE_BYTES@,
    object_serial    BIGINT,
    -- Whether the image service wrote that object (a Glance upload, deleted with the
    -- image) or a user registered an object of theirs (Plankton, kept when unregistered).
    object_owned     BOOLEAN NOT NULL,
    -- The control-plane process receiving data into the image (status saving, importing,
    -- or uploading while its stage is in flight): when that process stops, another puts
    -- the image back and deletes what it left (see control_plane_instances in 0006).
    receiving_instance TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX images_owner ON images (owner_id);
CREATE INDEX images_visibility ON images (visibility);
CREATE UNIQUE INDEX images_object ON images (object_serial);

-- Additional properties (Glance's free-form string fields; Synnefo's os, users, …).
CREATE TABLE image_properties (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    name     TEXT NOT NULL @COLLATE_BYTES@,
    value    TEXT NOT NULL,
    PRIMARY KEY (image_id, name)
);

CREATE TABLE image_tags (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL @COLLATE_BYTES@,
    PRIMARY KEY (image_id, tag)
);

-- Projects a `shared` image is offered to, and whether each accepted it.
CREATE TABLE image_members (
    image_id   TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- pending, accepted or rejected.
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (image_id, member_id)
);
CREATE INDEX image_members_member ON image_members (member_id);
