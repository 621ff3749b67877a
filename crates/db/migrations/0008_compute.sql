-- Compute (docs/servers.md): flavors, keypairs, servers and what hangs off them, and the
-- saga log every multi-step operation writes (crates/saga). Portable SQL, as in 0001.

-- Nodes now say how often they heartbeat, so "down" follows their own interval, and an
-- operator can drain one: the scheduler places nothing new there.
ALTER TABLE compute_nodes ADD COLUMN heartbeat_seconds BIGINT NOT NULL DEFAULT 10;
ALTER TABLE compute_nodes ADD COLUMN drained BOOLEAN NOT NULL DEFAULT FALSE;

-- Flavors are the administrator's; a server keeps a copy of its flavor, so a flavor can
-- be deleted while servers of it run.
CREATE TABLE flavors (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    vcpus          BIGINT NOT NULL,
    ram_mib        BIGINT NOT NULL,
    disk_gib       BIGINT NOT NULL,
    ephemeral_gib  BIGINT NOT NULL,
    swap_mib       BIGINT NOT NULL,
    rxtx_factor    DOUBLE PRECISION NOT NULL,
    is_public      BOOLEAN NOT NULL,
    disabled       BOOLEAN NOT NULL,
    description    TEXT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE flavor_extra_specs (
    flavor_id  TEXT NOT NULL REFERENCES flavors (id) ON DELETE CASCADE,
    spec_key   TEXT NOT NULL,
    spec_value TEXT NOT NULL,
    PRIMARY KEY (flavor_id, spec_key)
);

-- The projects a private flavor is open to.
CREATE TABLE flavor_access (
    flavor_id  TEXT NOT NULL REFERENCES flavors (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);

-- Keypairs belong to users, as in Nova.
CREATE TABLE keypairs (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_type    TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- A server's row is its desired and last reported state. vm_state, task_state and
-- power_state are Nova's; `status` is derived from them. A deleted server keeps its row
-- (deleted_at set) so that listings with changes-since show it as DELETED.
CREATE TABLE servers (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT,
    -- The Glance image it was created from, and that image's name then.
    image_id        TEXT,
    -- The flavor as it was when the server got it.
    flavor_id       TEXT NOT NULL,
    flavor_name     TEXT NOT NULL,
    vcpus           BIGINT NOT NULL,
    ram_mib         BIGINT NOT NULL,
    disk_gib        BIGINT NOT NULL,
    ephemeral_gib   BIGINT NOT NULL,
    swap_mib        BIGINT NOT NULL,
    -- JSON object.
    flavor_extra_specs TEXT NOT NULL,
    vm_state        TEXT NOT NULL,
    task_state      TEXT,
    power_state     BIGINT NOT NULL,
    -- Where it runs; NULL before it is placed.
    node_id         TEXT,
    -- JSON [{guest, host}] of the TCP ports the node forwards to the guest while it runs
    -- (user-mode networking, before private networks exist); reported by the node.
    forwards        TEXT,
    -- Servers created by one request share it (Nova's reservation_id).
    reservation_id  TEXT NOT NULL,
    -- The last generation handed out for calls on its VM; sagas take ranges of it.
    generation      BIGINT NOT NULL,
    key_name        TEXT,
    key_data        TEXT,
    -- Base64, as Nova takes it.
    user_data       TEXT,
    locked_by       TEXT,
    locked_reason   TEXT,
    access_ipv4     TEXT,
    access_ipv6     TEXT,
    -- JSON {code, message, details, created} of the last failure, when ERROR.
    fault           TEXT,
    -- Whether cyclades.cpu and cyclades.ram (Synnefo's "active" resources) are charged:
    -- they are while the server is meant to run.
    active_charged  BOOLEAN NOT NULL,
    launched_at     BIGINT,
    terminated_at   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX servers_project ON servers (project_id, created_at);
CREATE INDEX servers_node ON servers (node_id);
CREATE INDEX servers_updated ON servers (updated_at);

CREATE TABLE server_metadata (
    server_id  TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    meta_key   TEXT NOT NULL,
    meta_value TEXT NOT NULL,
    PRIMARY KEY (server_id, meta_key)
);

CREATE TABLE server_tags (
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (server_id, tag)
);

-- Nova's instance actions: what was asked of a server, by whom, and how it ended.
CREATE TABLE instance_actions (
    server_id   TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    request_id  TEXT NOT NULL,
    action      TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    start_time  BIGINT NOT NULL,
    finish_time BIGINT,
    -- NULL while running or after success; the error otherwise.
    message     TEXT,
    PRIMARY KEY (server_id, request_id)
);

-- Sagas (crates/saga): the log of every multi-step operation in flight.
CREATE TABLE sagas (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    -- What it acts on (a server's id), so that the reconciler leaves it alone.
    subject    TEXT NOT NULL,
    -- JSON; may hold secrets (an admin password), so finished sagas are deleted.
    params     TEXT NOT NULL,
    -- running, unwinding or stuck.
    state      TEXT NOT NULL,
    -- The control-plane process running it (control_plane_instances).
    owner      TEXT,
    error      TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sagas_owner ON sagas (owner);
CREATE INDEX sagas_subject ON sagas (subject);

CREATE TABLE saga_steps (
    saga_id    TEXT NOT NULL REFERENCES sagas (id) ON DELETE CASCADE,
    step       BIGINT NOT NULL,
    name       TEXT NOT NULL,
    -- started, done or undone.
    status     TEXT NOT NULL,
    output     TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (saga_id, step)
);
