-- Identity: users, projects, role assignments and tokens (docs/design.md §7).
-- Portable SQL: the same text runs on SQLite and PostgreSQL. Ids are text,
-- times are microseconds since the Unix epoch.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    -- 'base': a user's personal project; 'system': the cloud's admin project;
    -- 'regular': any other project.
    kind        TEXT NOT NULL CHECK (kind IN ('base', 'system', 'regular')),
    owner_id    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_name ON projects (name);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    email           TEXT,
    password_hash   TEXT,
    enabled         BOOLEAN NOT NULL,
    base_project_id TEXT NOT NULL REFERENCES projects (id),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_name ON users (name);

CREATE TABLE role_assignments (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member', 'reader')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id, role)
);
CREATE INDEX role_assignments_user ON role_assignments (user_id);

CREATE TABLE tokens (
    -- SHA-256 of the token; the token itself is never stored.
    token_hash TEXT PRIMARY KEY,
    audit_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects (id) ON DELETE CASCADE,
    methods    TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_at);
