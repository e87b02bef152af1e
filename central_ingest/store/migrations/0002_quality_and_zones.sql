-- 0002: data quality of count intervals (event schema 1.1), and zone intervals.
--
-- Schema 1.0 agents send no quality: their rows keep the quality columns NULL, which the
-- queries report as unknown (never as full coverage). A row has all quality columns or none.

ALTER TABLE count_intervals
    ADD COLUMN expected_s       double precision CHECK (expected_s > 0),
    ADD COLUMN analysed_s       double precision CHECK (analysed_s >= 0),
    ADD COLUMN frames_analysed  bigint CHECK (frames_analysed >= 0),
    ADD COLUMN frames_dropped   bigint CHECK (frames_dropped >= 0),
    ADD COLUMN downtime_s       double precision CHECK (downtime_s >= 0),
    ADD COLUMN detector_backend text,
    ADD COLUMN coverage         double precision CHECK (coverage >= 0 AND coverage <= 1),
    ADD CONSTRAINT count_intervals_quality_all_or_none CHECK (
        num_nulls(expected_s, analysed_s, frames_analysed, frames_dropped, downtime_s, detector_backend, coverage)
        IN (0, 7)
    );

-- Count queries pick, per line, the finest interval length stored in a range, then read only it.
CREATE INDEX count_intervals_line_length_time_idx
    ON count_intervals (agent_id, source_id, line_id, interval_s, time DESC);
CREATE INDEX line_counts_line_length_time_idx
    ON line_counts (agent_id, source_id, line_id, interval_s, time DESC);

-- One row per ZoneIntervalEvent, also when the zone stayed empty. Same 1-day chunks as 0001.
CREATE TABLE zone_intervals (
    time                   timestamptz NOT NULL,
    event_id               uuid NOT NULL,
    agent_id               text NOT NULL,
    source_id              text NOT NULL,
    zone_id                text NOT NULL,
    interval_s             integer NOT NULL CHECK (interval_s > 0),
    entries                integer NOT NULL CHECK (entries >= 0),
    exits                  integer NOT NULL CHECK (exits >= 0),
    occupancy_mean         double precision CHECK (occupancy_mean >= 0),
    occupancy_max          integer CHECK (occupancy_max >= 0),
    dwell_mean_s           double precision CHECK (dwell_mean_s >= 0),
    dwell_max_s            double precision CHECK (dwell_max_s >= 0),
    dwell_p95_s            double precision CHECK (dwell_p95_s >= 0),
    dwell_longest_inside_s double precision CHECK (dwell_longest_inside_s >= 0),
    expected_s             double precision NOT NULL CHECK (expected_s > 0),
    analysed_s             double precision NOT NULL CHECK (analysed_s >= 0),
    frames_analysed        bigint NOT NULL CHECK (frames_analysed >= 0),
    frames_dropped         bigint NOT NULL CHECK (frames_dropped >= 0),
    downtime_s             double precision NOT NULL CHECK (downtime_s >= 0),
    detector_backend       text NOT NULL,
    coverage               double precision NOT NULL CHECK (coverage >= 0 AND coverage <= 1),
    schema_version         text NOT NULL,
    received_at            timestamptz NOT NULL DEFAULT now(),
    -- TimescaleDB needs the partitioning column in every unique key.
    PRIMARY KEY (event_id, time)
);
SELECT create_hypertable('zone_intervals', by_range('time', INTERVAL '1 day'));
CREATE INDEX zone_intervals_zone_length_time_idx
    ON zone_intervals (agent_id, source_id, zone_id, interval_s, time DESC);

-- One row per class seen in a zone interval (entries, exits, occupancy of that class).
CREATE TABLE zone_class_counts (
    time           timestamptz NOT NULL,
    event_id       uuid NOT NULL,
    agent_id       text NOT NULL,
    source_id      text NOT NULL,
    zone_id        text NOT NULL,
    interval_s     integer NOT NULL CHECK (interval_s > 0),
    vehicle_class  text NOT NULL,
    entries        integer NOT NULL CHECK (entries >= 0),
    exits          integer NOT NULL CHECK (exits >= 0),
    occupancy_mean double precision CHECK (occupancy_mean >= 0),
    occupancy_max  integer CHECK (occupancy_max >= 0),
    UNIQUE (event_id, vehicle_class, time)
);
SELECT create_hypertable('zone_class_counts', by_range('time', INTERVAL '1 day'));
CREATE INDEX zone_class_counts_zone_time_idx ON zone_class_counts (source_id, zone_id, time DESC);
