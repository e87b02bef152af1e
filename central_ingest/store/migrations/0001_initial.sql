-- 0001: agents, and the three event hypertables.
--
-- Chunk interval: 1 day for all three hypertables. At provincial scale (about 500
-- cameras, 2 lines each, one interval a minute, health every 10-60 s) a day of any
-- of these tables is a few million narrow rows, so today's chunk and its indexes
-- stay in memory while older days are cold; the usual dashboard query ("last 24 h")
-- touches one or two chunks; and retention can later drop whole days with
-- drop_chunks, which works without TimescaleDB's community licence.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE agents (
    agent_id     text PRIMARY KEY,
    -- Only the SHA-256 of the bearer token is kept; the token itself is shown once.
    token_sha256 bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- One row per CountIntervalEvent, also when nothing crossed (a quiet interval is data).
CREATE TABLE count_intervals (
    time           timestamptz NOT NULL,
    event_id       uuid NOT NULL,
    agent_id       text NOT NULL,
    source_id      text NOT NULL,
    line_id        text NOT NULL,
    interval_s     integer NOT NULL CHECK (interval_s > 0),
    schema_version text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    -- TimescaleDB needs the partitioning column in every unique key.
    PRIMARY KEY (event_id, time)
);
SELECT create_hypertable('count_intervals', by_range('time', INTERVAL '1 day'));
CREATE INDEX count_intervals_source_line_time_idx ON count_intervals (source_id, line_id, time DESC);

-- One row per (class, direction) bucket of a count interval; what the count queries read.
CREATE TABLE line_counts (
    time          timestamptz NOT NULL,
    event_id      uuid NOT NULL,
    agent_id      text NOT NULL,
    source_id     text NOT NULL,
    line_id       text NOT NULL,
    interval_s    integer NOT NULL CHECK (interval_s > 0),
    vehicle_class text NOT NULL,
    direction     text NOT NULL CHECK (direction IN ('in', 'out')),
    count         integer NOT NULL CHECK (count >= 0),
    UNIQUE (event_id, vehicle_class, direction, time)
);
SELECT create_hypertable('line_counts', by_range('time', INTERVAL '1 day'));
CREATE INDEX line_counts_source_line_time_idx ON line_counts (source_id, line_id, time DESC);

-- One row per HealthEvent.
CREATE TABLE health (
    time             timestamptz NOT NULL,
    event_id         uuid NOT NULL,
    agent_id         text NOT NULL,
    source_id        text NOT NULL,
    state            text NOT NULL,
    reason           text NOT NULL,
    frames_decoded   bigint NOT NULL CHECK (frames_decoded >= 0),
    frames_processed bigint NOT NULL CHECK (frames_processed >= 0),
    frames_dropped   bigint NOT NULL CHECK (frames_dropped >= 0),
    fps              double precision NOT NULL CHECK (fps >= 0),
    uptime_s         double precision NOT NULL CHECK (uptime_s >= 0),
    schema_version   text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time)
);
SELECT create_hypertable('health', by_range('time', INTERVAL '1 day'));
CREATE INDEX health_agent_source_time_idx ON health (agent_id, source_id, time DESC);
