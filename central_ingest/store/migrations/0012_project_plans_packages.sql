-- 0012: construction projects (names) and the work packages of each approved plan version.
--
-- projects: one row per project that has a plan; the names pages show (Vietnamese first). A plan
-- approval upserts it; names are kept when a later approval gives none.
CREATE TABLE projects (
    project_id text PRIMARY KEY,
    name_vi    text NOT NULL DEFAULT '' CHECK (length(name_vi) <= 200),
    name_en    text NOT NULL DEFAULT '' CHECK (length(name_en) <= 200),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projects (project_id) SELECT DISTINCT project_id FROM project_plans;

-- Who approved a version, and the file it was imported from (NULL: JSON through the API). Versions
-- stored before 0012 have approved_by ''.
ALTER TABLE project_plans
    ADD COLUMN approved_by   text NOT NULL DEFAULT '',
    ADD COLUMN source_name   text,
    ADD COLUMN source_sha256 text CHECK (source_sha256 ~ '^[0-9a-f]{64}$');

-- The packages of a plan version: weight (normalised over the version's packages when read), the planned
-- schedule (both dates or neither; without points the S-curve is generated from them) and whether the
-- package is critical (it then gets its own progress_behind subject). Plans without packages have no rows.
CREATE TABLE project_plan_packages (
    project_id     text NOT NULL,
    plan_version   integer NOT NULL,
    package_id     text NOT NULL CHECK (package_id <> ''),
    position       integer NOT NULL,
    name           text NOT NULL DEFAULT '',
    weight         double precision NOT NULL CHECK (weight > 0 AND weight < 'Infinity'),
    planned_start  date,
    planned_finish date,
    critical       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (project_id, plan_version, package_id),
    FOREIGN KEY (project_id, plan_version) REFERENCES project_plans (project_id, plan_version) ON DELETE CASCADE,
    CHECK ((planned_start IS NULL) = (planned_finish IS NULL)),
    CHECK (planned_finish >= planned_start)
);
