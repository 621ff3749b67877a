-- The address a node's VXLAN tunnels use (absent: the node realises no networks), and
-- the order of the network descriptions the control plane sends nodes.
ALTER TABLE compute_nodes ADD COLUMN tunnel_address TEXT;
INSERT INTO counters (name, value) VALUES ('node_networks', 0);

-- The ports of each server, in the order of its NICs; made_with_server (0 or 1) marks the
-- ports its creation made, which its deletion deletes (Nova's preserve_on_delete false),
-- where a port the project made and gave it is only freed.
CREATE TABLE server_ports (
    server_id        TEXT NOT NULL,
    port_id          TEXT PRIMARY KEY,
    position         BIGINT NOT NULL,
    made_with_server BIGINT NOT NULL
);
CREATE INDEX server_ports_server ON server_ports (server_id, position);
