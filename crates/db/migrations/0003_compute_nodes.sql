-- Compute nodes (docs/design.md §5): each node agent registers itself and heartbeats. A
-- node's row is its latest self-description; the control plane holds no other node state.
CREATE TABLE compute_nodes (
    id                TEXT PRIMARY KEY,
    rpc_url           TEXT NOT NULL,
    cpus              BIGINT NOT NULL,
    ram_mib           BIGINT NOT NULL,
    disk_free_bytes   BIGINT NOT NULL,
    disk_total_bytes  BIGINT NOT NULL,
    guest_cpu_model   TEXT NOT NULL,
    host_cpu          TEXT NOT NULL,
    accelerator       TEXT NOT NULL,
    qemu_version      TEXT NOT NULL,
    agent_version     TEXT NOT NULL,
    running_vms       BIGINT NOT NULL,
    registered_at     BIGINT NOT NULL,
    heartbeat_at      BIGINT NOT NULL
);
