-- Quotas and projects (docs/design.md §7), as Synnefo's Astakos has them: resources with
-- default limits, projects that grant resources to their members, holdings that count
-- usage per (project, member, resource) and per project, and two-phase commissions that
-- change usage. Portable SQL, as in 0001.

-- What can be counted. Services register their resources at start; a commission naming
-- any other is refused.
CREATE TABLE quota_resources (
    name            TEXT PRIMARY KEY,
    -- The service that registered it: 'cyclades', 'pithos'.
    service         TEXT NOT NULL,
    -- 'count' or 'bytes'.
    unit            TEXT NOT NULL,
    description     TEXT NOT NULL,
    -- The limit of every base (personal) project that sets none of its own.
    base_default    BIGINT NOT NULL,
    -- The limit per member and per project of a regular project whose grant omits it.
    project_default BIGINT NOT NULL,
    registered_at   BIGINT NOT NULL
);

-- A project's life beyond Keystone's `enabled`: 'uninitialized' until its first
-- application is approved, then 'active', 'suspended' or 'terminated'; 'deleted' when its
-- first application was denied or cancelled. Every project made before this migration,
-- and every project an administrator makes through Keystone, is active.
ALTER TABLE projects ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE projects ADD COLUMN homepage TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN start_at BIGINT;
ALTER TABLE projects ADD COLUMN end_at BIGINT;
-- 'auto', 'moderated' or 'closed'.
ALTER TABLE projects ADD COLUMN join_policy TEXT NOT NULL DEFAULT 'moderated';
ALTER TABLE projects ADD COLUMN leave_policy TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE projects ADD COLUMN max_members BIGINT;

-- What a project grants: a limit per member and one for the project as a whole. A base
-- project without a row has its resource's base default for both; a regular project
-- without one, the resource's project default.
CREATE TABLE project_quotas (
    project_id    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    resource      TEXT NOT NULL REFERENCES quota_resources (name),
    member_limit  BIGINT NOT NULL,
    project_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- Applications to create or change a project; the approved one is what the project is.
CREATE TABLE project_applications (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    applicant_id TEXT NOT NULL,
    -- 'pending', 'approved', 'denied', 'dismissed' or 'cancelled'.
    state        TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    homepage     TEXT NOT NULL,
    start_at     BIGINT,
    end_at       BIGINT NOT NULL,
    join_policy  TEXT NOT NULL,
    leave_policy TEXT NOT NULL,
    max_members  BIGINT,
    -- JSON object: resource -> {"member_capacity": N, "project_capacity": N}.
    resources    TEXT NOT NULL,
    comments     TEXT NOT NULL,
    -- Why an administrator approved or denied it.
    reason       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    decided_at   BIGINT
);
CREATE INDEX project_applications_project ON project_applications (project_id, created_at);
CREATE INDEX project_applications_pending ON project_applications (state) WHERE state = 'pending';

-- The Synnefo side of membership: requests to join and leave, and their answers. An
-- accepted member holds the 'member' role on the project (role_assignments), which is
-- what lets a token be scoped to it.
CREATE TABLE project_memberships (
    id         BIGINT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'requested', 'accepted', 'leave_requested', 'rejected', 'cancelled', 'removed', 'left'.
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX project_memberships_member ON project_memberships (project_id, user_id);
CREATE INDEX project_memberships_user ON project_memberships (user_id);
INSERT INTO counters (name, value) VALUES ('membership_id', 0);

-- Usage per (project, member, resource); member_id '' is the project as a whole. Between
-- `usage_min` and `usage_max` lie the pending commissions: an issued increase raises
-- `usage_max`, an issued decrease lowers `usage_min`; accepting or rejecting one brings the
-- other bound along or back. Limits are not stored: they follow from the project's grant
-- and state, and the membership, when a commission is checked.
CREATE TABLE quota_holdings (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    member_id  TEXT NOT NULL,
    resource   TEXT NOT NULL REFERENCES quota_resources (name),
    usage_min  BIGINT NOT NULL,
    usage_max  BIGINT NOT NULL,
    PRIMARY KEY (project_id, member_id, resource)
);

-- Pending commissions, a row per provision (a commission is the rows of its serial), so
-- that issuing one is one insert and resolving it one delete. Resolved ones leave the
-- table (accepted ones stay as usage events). A provision goes with its project: a
-- commission pending when its project is deleted then resolves as nothing of it.
CREATE TABLE quota_provisions (
    serial     BIGINT NOT NULL,
    -- Who issued it: a service ('pithos', 'cyclades') or the user id of an API client.
    client     TEXT NOT NULL,
    -- The control-plane process holding it pending, when a service issued it: should that
    -- process stop, another rejects the commission.
    instance   TEXT,
    name       TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    member_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    quantity   BIGINT NOT NULL
);
CREATE INDEX quota_provisions_serial ON quota_provisions (serial);
CREATE INDEX quota_provisions_client ON quota_provisions (client);
CREATE INDEX quota_provisions_instance ON quota_provisions (instance);
INSERT INTO counters (name, value) VALUES ('commission_serial', 0);

-- Every accepted change of a member's usage, for usage over time (VM-hours, GiB-months).
CREATE TABLE quota_usage_events (
    project_id TEXT NOT NULL,
    member_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    quantity   BIGINT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX quota_usage_events_at ON quota_usage_events (at);

-- Live control-plane processes, for the commissions they hold pending.
CREATE TABLE control_plane_instances (
    id           TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Object storage charges `pithos.diskspace` of the account's project to a member: the
-- writer when a member, otherwise the project's owner. Kept per version, so that deleting
-- it releases what was charged. Versions written before this migration are charged to the
-- owner of a personal project, or else to their writer; their usage is counted in once,
-- here (the resource is registered here for that reason).
ALTER TABLE objects ADD COLUMN charged_to TEXT NOT NULL DEFAULT '';
-- What a version is charged: its size, but nothing for a static large object's manifest,
-- whose bytes are its segments' (deletion markers have no size).
ALTER TABLE objects ADD COLUMN charged_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE objects SET charged_bytes = CASE
    WHEN meta LIKE '%"x-static-large-object":"True"%' THEN 0 ELSE size END;
UPDATE objects SET charged_to = COALESCE(
    (SELECT p.owner_id FROM containers c JOIN projects p ON p.id = c.project_id
      WHERE c.id = objects.container_id AND p.owner_id IS NOT NULL),
    modified_by);
INSERT INTO quota_resources (name, service, unit, description, base_default,
                             project_default, registered_at)
VALUES ('pithos.diskspace', 'pithos', 'bytes', 'Storage space', 21474836480, 0, 0);
-- Regular projects made before quotas existed keep storing: they grant each member, and
-- all together, what a personal project has by default (a project applied for later
-- grants what its application asks).
INSERT INTO project_quotas (project_id, resource, member_limit, project_limit)
SELECT id, 'pithos.diskspace', 21474836480, 21474836480 FROM projects WHERE kind = 'regular';
INSERT INTO quota_holdings (project_id, member_id, resource, usage_min, usage_max)
SELECT c.project_id, o.charged_to, 'pithos.diskspace', SUM(o.charged_bytes),
       SUM(o.charged_bytes)
  FROM objects o JOIN containers c ON c.id = o.container_id
 WHERE o.charged_to <> ''
 GROUP BY c.project_id, o.charged_to;
INSERT INTO quota_holdings (project_id, member_id, resource, usage_min, usage_max)
SELECT c.project_id, '', 'pithos.diskspace', SUM(o.charged_bytes), SUM(o.charged_bytes)
  FROM objects o JOIN containers c ON c.id = o.container_id
 GROUP BY c.project_id;

-- Their history, for usage over time: each version from when it was written.
INSERT INTO quota_usage_events (project_id, member_id, resource, quantity, at)
SELECT c.project_id, o.charged_to, 'pithos.diskspace', o.charged_bytes, o.modified_at
  FROM objects o JOIN containers c ON c.id = o.container_id
 WHERE o.charged_bytes > 0 AND o.charged_to <> '';

-- Pithos's container policy quota: bytes of every version the container keeps.
ALTER TABLE containers ADD COLUMN quota_bytes BIGINT;
