-- Object storage (docs/design.md §4): an account is a project; a container belongs to
-- one; every version of every object is a row whose content is a list of block hashes
-- (its hashmap) in the block store. Portable SQL, as in 0001; names sort bytewise
-- (@COLLATE_BYTES@ is replaced by each engine's spelling of that collation).

-- Monotonic counters allocated inside transactions (`UPDATE … RETURNING`), because SQLite
-- and PostgreSQL spell auto-increment differently.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('object_serial', 0);

CREATE TABLE storage_accounts (
    project_id TEXT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    -- JSON object of user metadata (X-Account-Meta-*, lower-case keys).
    meta       TEXT NOT NULL,
    -- JSON object: Pithos group name -> list of user names (X-Account-Group-*).
    groups     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE containers (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL @COLLATE_BYTES@,
    -- 'auto' keeps every version of every object; 'none' keeps only the current one.
    versioning TEXT NOT NULL CHECK (versioning IN ('auto', 'none')),
    -- JSON object of user metadata (X-Container-Meta-*, including Swift's quota keys).
    meta       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX containers_name ON containers (project_id, name);

CREATE TABLE objects (
    -- The version id: allocated from counters, so it grows with time.
    serial       BIGINT PRIMARY KEY,
    container_id TEXT NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    name         TEXT NOT NULL @COLLATE_BYTES@,
    -- The live version of the name; at most one per name.
    current      BOOLEAN NOT NULL,
    -- A deletion marker, kept in versioned containers so that `until=` sees the deletion.
    deleted      BOOLEAN NOT NULL,
    size         BIGINT NOT NULL,
    -- Block hashes, 64 hex digits each, concatenated.
    hashmap      TEXT NOT NULL,
    -- MD5 of the content, hex (Swift's ETag); for manifests, Swift's manifest ETag.
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    -- JSON object: user metadata and stored headers (Content-Disposition, manifests, …).
    meta         TEXT NOT NULL,
    delete_at    BIGINT,
    modified_at  BIGINT NOT NULL,
    modified_by  TEXT NOT NULL
);
CREATE UNIQUE INDEX objects_current ON objects (container_id, name) WHERE current;
CREATE INDEX objects_history ON objects (container_id, name, serial);
CREATE INDEX objects_delete_at ON objects (delete_at) WHERE delete_at IS NOT NULL;

-- Per-path attributes that outlive versions (Pithos): sharing and the public URL.
CREATE TABLE object_paths (
    container_id TEXT NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    name         TEXT NOT NULL @COLLATE_BYTES@,
    -- X-Object-Sharing as given: 'read=a,b;write=c'.
    sharing      TEXT,
    public_token TEXT,
    PRIMARY KEY (container_id, name)
);
CREATE UNIQUE INDEX object_paths_public ON object_paths (public_token);
