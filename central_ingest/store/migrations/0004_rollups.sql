-- 0004: hourly and daily rollups of the interval counts, kept by the service (store/rollups.py).
--
-- Used on the Apache edition of TimescaleDB, which has no continuous aggregates; the Timescale
-- edition builds continuous aggregates at runtime instead (store/rollups.py, ensure_timescale_policies),
-- because this file must also parse on the Apache edition.
--
-- Hour buckets start on the UTC hour; day buckets start at local midnight of the service timezone
-- (Settings.timezone), stored as that instant in UTC. interval_s is part of every key: 60 s and 900 s
-- intervals of one line are never added together (the queries read one length per line).
-- Counts and quality are separate tables because they have different keys: a line's interval
-- coverage belongs to the line, not to one vehicle class and direction.

-- Hours claimed from count_rollup_dirty and not yet recomputed: a crash between the claim and the
-- recomputation leaves them here, and the next run finishes them.
CREATE TABLE count_rollup_pending (
    hour timestamptz PRIMARY KEY
);

CREATE TABLE counts_hourly (
    bucket        timestamptz NOT NULL,
    agent_id      text NOT NULL,
    source_id     text NOT NULL,
    line_id       text NOT NULL,
    interval_s    integer NOT NULL CHECK (interval_s > 0),
    vehicle_class text NOT NULL,
    direction     text NOT NULL CHECK (direction IN ('in', 'out')),
    count         bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (bucket, agent_id, source_id, line_id, interval_s, vehicle_class, direction)
);
-- 30-day chunks: retention (hourly_rollup_days, 2 years by default) drops whole months.
SELECT create_hypertable('counts_hourly', by_range('bucket', INTERVAL '30 days'), create_default_indexes => false);
CREATE INDEX counts_hourly_source_line_bucket_idx ON counts_hourly (source_id, line_id, bucket DESC);

CREATE TABLE count_quality_hourly (
    bucket                    timestamptz NOT NULL,
    agent_id                  text NOT NULL,
    source_id                 text NOT NULL,
    line_id                   text NOT NULL,
    interval_s                integer NOT NULL CHECK (interval_s > 0),
    intervals                 integer NOT NULL CHECK (intervals > 0),
    intervals_without_quality integer NOT NULL CHECK (intervals_without_quality >= 0),
    -- Sums over the intervals that carry quality; NULL when none does (schema 1.0 agents).
    expected_s                double precision,
    analysed_s                double precision,
    downtime_s                double precision,
    frames_analysed           bigint,
    frames_dropped            bigint,
    PRIMARY KEY (bucket, agent_id, source_id, line_id, interval_s)
);
SELECT create_hypertable(
    'count_quality_hourly', by_range('bucket', INTERVAL '30 days'), create_default_indexes => false
);
CREATE INDEX count_quality_hourly_source_line_bucket_idx ON count_quality_hourly (source_id, line_id, bucket DESC);

-- Daily rollups are kept forever: a year of a province (500 cameras, 2 lines, 10 classes, 2 directions)
-- is about 7 million narrow rows. 1-year chunks keep the chunk count small.
CREATE TABLE counts_daily (LIKE counts_hourly INCLUDING ALL);
SELECT create_hypertable('counts_daily', by_range('bucket', INTERVAL '365 days'), create_default_indexes => false);

CREATE TABLE count_quality_daily (LIKE count_quality_hourly INCLUDING ALL);
SELECT create_hypertable(
    'count_quality_daily', by_range('bucket', INTERVAL '365 days'), create_default_indexes => false
);
