-- Security groups: sets of rules a port's traffic must match, each project with a
-- default group (made the first time the project needs one), and which groups each port
-- is in.
CREATE TABLE security_groups (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    charged_to  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    revision    BIGINT NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id, id);

-- The primary key keeps it to one default group per project, however many requests
-- make one at once.
CREATE TABLE default_security_groups (
    project_id        TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL
);

CREATE TABLE security_group_rules (
    id                TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id),
    project_id        TEXT NOT NULL,
    direction         TEXT NOT NULL,
    ethertype         TEXT NOT NULL,
    protocol          TEXT,
    port_range_min    BIGINT,
    port_range_max    BIGINT,
    remote_ip_prefix  TEXT,
    remote_group_id   TEXT,
    description       TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    revision          BIGINT NOT NULL
);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE INDEX security_group_rules_remote ON security_group_rules (remote_group_id);

CREATE TABLE port_security_groups (
    port_id           TEXT NOT NULL,
    security_group_id TEXT NOT NULL,
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX port_security_groups_group ON port_security_groups (security_group_id);
