-- Moves of servers between nodes (Nova's os-migrations): one row per move, kept after
-- it ends for the operators' reports. `id` is Nova's integer id, given by the control
-- plane under the placement lock. Progress and the figures QEMU measured are written as
-- the move goes.
CREATE TABLE server_migrations (
    id                      BIGINT PRIMARY KEY,
    uuid                    TEXT NOT NULL UNIQUE,
    server_id               TEXT NOT NULL,
    project_id              TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    -- Nova's migration_type: 'live-migration'.
    kind                    TEXT NOT NULL,
    source_node             TEXT NOT NULL,
    dest_node               TEXT NOT NULL,
    -- Nova's statuses: queued, preparing, running, completed, cancelling, cancelled,
    -- error; and switching: the destination is being asked to let the guest run.
    status                  TEXT NOT NULL,
    memory_total_bytes      BIGINT NOT NULL DEFAULT 0,
    memory_processed_bytes  BIGINT NOT NULL DEFAULT 0,
    memory_remaining_bytes  BIGINT NOT NULL DEFAULT 0,
    disk_total_bytes        BIGINT NOT NULL DEFAULT 0,
    disk_processed_bytes    BIGINT NOT NULL DEFAULT 0,
    disk_remaining_bytes    BIGINT NOT NULL DEFAULT 0,
    -- How long the guest was paused at the switch, as QEMU measured it, and the whole
    -- move, in milliseconds.
    downtime_ms             BIGINT,
    total_ms                BIGINT,
    error                   TEXT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX server_migrations_by_server ON server_migrations (server_id, id);

-- The internal APIs' version each node's agent speaks: a move needs both nodes to speak
-- live migration. Agents from before versions were carried speak version 1.
ALTER TABLE compute_nodes ADD COLUMN api_version BIGINT NOT NULL DEFAULT 1;

-- While a server moves, its ports are on its destination too: the destination has their
-- taps, rules and tunnels before the guest arrives, the source keeps them until it leaves.
ALTER TABLE ports ADD COLUMN migrating_to TEXT;
