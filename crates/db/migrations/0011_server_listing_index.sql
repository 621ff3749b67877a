-- A project's servers in the listing's default order (newest first, ties by id), so a page
-- is read from the index in order and cut at its limit, with no sort of the ties.
CREATE INDEX servers_project_created ON servers (project_id, created_at, id);
DROP INDEX servers_project;
