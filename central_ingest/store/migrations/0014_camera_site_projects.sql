-- 0014: the construction project a camera site watches (optional), so the project's live view lists the
-- camera as soon as it is registered, before its first progress figure or activity window arrives.
ALTER TABLE camera_sites
    ADD COLUMN project_id text CHECK (project_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');
CREATE INDEX camera_sites_project_idx ON camera_sites (project_id) WHERE project_id IS NOT NULL;
