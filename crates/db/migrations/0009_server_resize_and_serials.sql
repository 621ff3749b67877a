-- A server being resized keeps its earlier flavor until the resize is confirmed or
-- reverted (JSON, as crates/compute's ServerFlavor), and every server gets the integer
-- id Synnefo's Cyclades API and its clients (kamaki) use beside the UUID Nova uses.
ALTER TABLE servers ADD COLUMN resized_from TEXT;
ALTER TABLE servers ADD COLUMN serial BIGINT;

-- Servers that exist already are numbered in the order they were created.
UPDATE servers SET serial = (
    SELECT COUNT(*) FROM servers AS earlier
    WHERE earlier.created_at < servers.created_at
       OR (earlier.created_at = servers.created_at AND earlier.id <= servers.id)
);
CREATE UNIQUE INDEX servers_serial ON servers (serial);

-- The next serials come from the counter other serials come from (migration 2).
INSERT INTO counters (name, value) SELECT 'server_serial', COUNT(*) FROM servers;
