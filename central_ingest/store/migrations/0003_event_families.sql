-- 0003: the event families of schema 1.2 (violations, plate passes, progress, sensor readings),
-- the dead-letter table, per-agent ingest counters, and the last time each source was heard from.
--
-- Same 1-day chunks as 0001 for the hypertables, and the same idempotency key: (event_id, time),
-- so a re-sent event is a no-op (TimescaleDB needs the partitioning column in every unique key).

CREATE TABLE violations (
    time             timestamptz NOT NULL,
    event_id         uuid NOT NULL,
    agent_id         text NOT NULL,
    source_id        text NOT NULL,
    violation_type   text NOT NULL,
    category         text NOT NULL CHECK (category IN ('violation', 'incident')),
    track_id         bigint NOT NULL CHECK (track_id >= 0),
    vehicle_class    text,
    line_id          text,
    zone_id          text,
    plate            text,
    plate_confidence real CHECK (plate_confidence BETWEEN 0 AND 1),
    duration_s       double precision CHECK (duration_s >= 0),
    evidence         jsonb NOT NULL DEFAULT '[]',
    schema_version   text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time)
);
SELECT create_hypertable('violations', by_range('time', INTERVAL '1 day'));
CREATE INDEX violations_source_time_idx ON violations (source_id, time DESC);

-- Personal data (plates): the police issue adds access control and audit on top of this table.
CREATE TABLE plate_passes (
    time             timestamptz NOT NULL,
    event_id         uuid NOT NULL,
    agent_id         text NOT NULL,
    source_id        text NOT NULL,
    plate            text NOT NULL,
    plate_confidence real NOT NULL CHECK (plate_confidence BETWEEN 0 AND 1),
    track_id         bigint NOT NULL CHECK (track_id >= 0),
    vehicle_class    text,
    direction        text CHECK (direction IN ('in', 'out')),
    line_id          text,
    vehicle_colour   text,
    plate_colour     text,
    evidence         jsonb NOT NULL DEFAULT '[]',
    schema_version   text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time)
);
SELECT create_hypertable('plate_passes', by_range('time', INTERVAL '1 day'));
CREATE INDEX plate_passes_plate_time_idx ON plate_passes (plate, time DESC);
CREATE INDEX plate_passes_source_time_idx ON plate_passes (source_id, time DESC);

-- package_id '' is the project as a whole (a NULL could not take part in the lookups by package).
CREATE TABLE progress (
    time             timestamptz NOT NULL,
    event_id         uuid NOT NULL,
    agent_id         text NOT NULL,
    source_id        text NOT NULL,
    project_id       text NOT NULL,
    package_id       text NOT NULL DEFAULT '',
    percent_complete double precision NOT NULL CHECK (percent_complete BETWEEN 0 AND 100),
    method           text NOT NULL,
    confidence       double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    confirmed        boolean NOT NULL,
    note             text NOT NULL DEFAULT '',
    evidence         jsonb NOT NULL DEFAULT '[]',
    schema_version   text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time)
);
-- Progress is a few rows per package per day: 30-day chunks keep the chunk count small.
SELECT create_hypertable('progress', by_range('time', INTERVAL '30 days'));
CREATE INDEX progress_project_package_time_idx ON progress (project_id, package_id, time DESC);

-- One row per metric of a reading: a station adding a metric needs no schema change.
CREATE TABLE sensor_readings (
    time           timestamptz NOT NULL,
    event_id       uuid NOT NULL,
    agent_id       text NOT NULL,
    source_id      text NOT NULL,
    sensor_kind    text NOT NULL,
    metric         text NOT NULL,
    value          double precision NOT NULL,
    schema_version text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, metric, time)
);
SELECT create_hypertable('sensor_readings', by_range('time', INTERVAL '1 day'));
CREATE INDEX sensor_readings_source_metric_time_idx ON sensor_readings (source_id, metric, time DESC);

-- Everything refused, with the raw bytes as received, so nothing is silently lost.
-- A plain table: it is small, and its rows are pruned by age (dead_letter_retention_days).
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    channel     text NOT NULL CHECK (channel IN ('http', 'mqtt')),
    agent_id    text,
    position    integer CHECK (position >= 0),
    event_id    text,
    reason      text NOT NULL,
    payload     bytea NOT NULL
);
CREATE INDEX dead_letters_agent_received_idx ON dead_letters (agent_id, received_at DESC);

-- Running totals per agent, updated in the transaction that stores its batch.
CREATE TABLE agent_ingest_stats (
    agent_id         text PRIMARY KEY,
    batches          bigint NOT NULL DEFAULT 0,
    events_stored    bigint NOT NULL DEFAULT 0,
    events_duplicate bigint NOT NULL DEFAULT 0,
    events_rejected  bigint NOT NULL DEFAULT 0,
    last_batch_at    timestamptz,
    last_rejected_at timestamptz
);

-- When each source was last heard from (any event family), for the silence alerts and the health page.
CREATE TABLE source_last_seen (
    agent_id         text NOT NULL,
    source_id        text NOT NULL,
    family           text NOT NULL,
    last_event_time  timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    PRIMARY KEY (agent_id, source_id, family)
);

-- Hours whose count intervals changed since the rollups last read them: the writer adds the hour
-- of every newly stored count interval (late data included), the rollup job empties it.
CREATE TABLE count_rollup_dirty (
    hour timestamptz PRIMARY KEY
);
