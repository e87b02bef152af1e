-- 0013 (schema 1.5): how a camera's progress estimate was measured, the work seen on construction
-- sites per zone and hour, and the live-view address of a camera site.
--
-- progress: the four measurement details of a camera estimate (null for figures entered by people
-- and for events of schema < 1.5).
ALTER TABLE progress
    ADD COLUMN raw_percent     double precision CHECK (raw_percent BETWEEN 0 AND 100),
    ADD COLUMN frames_used     integer CHECK (frames_used >= 0),
    ADD COLUMN frames_rejected integer CHECK (frames_rejected >= 0),
    ADD COLUMN quality         double precision CHECK (quality BETWEEN 0 AND 1);

-- One row per site_activity event: a zone of a construction camera over [start, time), usually an
-- hour. A day's working hours are sum(active_s) / 3600 of the windows that start that (local) day.
-- The groups are the contract's fixed three (worker, machine, truck): a column each, null when the
-- event did not report the group.
CREATE TABLE site_activity (
    time           timestamptz NOT NULL,
    event_id       uuid NOT NULL,
    agent_id       text NOT NULL,
    source_id      text NOT NULL,
    project_id     text NOT NULL,
    zone_id        text NOT NULL,
    start          timestamptz NOT NULL,
    frames         integer NOT NULL CHECK (frames >= 0),
    covered_s      double precision NOT NULL CHECK (covered_s BETWEEN 0 AND 86400),
    activity_index double precision NOT NULL CHECK (activity_index BETWEEN 0 AND 1),
    active_s       double precision NOT NULL CHECK (active_s BETWEEN 0 AND 86400),
    mean_workers   double precision CHECK (mean_workers >= 0),
    mean_machines  double precision CHECK (mean_machines >= 0),
    mean_trucks    double precision CHECK (mean_trucks >= 0),
    peak_workers   integer CHECK (peak_workers >= 0),
    peak_machines  integer CHECK (peak_machines >= 0),
    peak_trucks    integer CHECK (peak_trucks >= 0),
    schema_version text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time),
    CHECK (start < time)
);
-- About 24 rows per zone and day: 30-day chunks as for progress.
SELECT create_hypertable('site_activity', by_range('time', INTERVAL '30 days'));
CREATE INDEX site_activity_project_time_idx ON site_activity (project_id, time DESC);

-- The address of the camera's live view (the edge agent's MJPEG preview, usually behind a proxy),
-- shown in the projects page's meeting view; optional.
ALTER TABLE camera_sites
    ADD COLUMN preview_url text CHECK (preview_url ~ '^https?://\S+$' AND length(preview_url) <= 500);
