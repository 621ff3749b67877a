-- Node credentials (docs/design.md §3): each node has its own, from its enrolment, so that one
-- node can be revoked alone. An operator's `nefos admin node enroll NAME` stores the hash
-- of a one-time join token with its expiry; the node exchanges the token once for its own
-- bearer token, whose hash replaces it. Revoking a node deletes its row.
CREATE TABLE compute_node_credentials (
    node_id          TEXT PRIMARY KEY,
    -- SHA-256 (hex) of the join token while the enrolment waits for the node.
    join_token_hash  TEXT UNIQUE,
    join_expires_at  BIGINT,
    -- SHA-256 (hex) of the node's token once it has joined.
    token_hash       TEXT UNIQUE,
    -- Random and not secret: the node's RPC key is derived from it and the node's id, so
    -- a new enrolment of the same name gets a new RPC key.
    credential_id    TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    joined_at        BIGINT
);

-- The blocks a node may read from the internal API: those of the images the control
-- plane asked it to run. Any other block is refused as if it did not exist.
CREATE TABLE compute_node_blocks (
    node_id     TEXT NOT NULL,
    block_hash  TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (node_id, block_hash)
);
