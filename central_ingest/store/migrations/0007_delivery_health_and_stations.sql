-- 0007: schema 1.3 of the event contract.
--
-- health.delivery: the agent's store-and-forward state (spool backlog, events its full spool dropped
-- with their time range, memory-held events, dead letters), carried by the agent's own health events.
-- Null on camera and sensor health events and on events of older agents.
ALTER TABLE health ADD COLUMN delivery jsonb;

-- The latest alert levels (báo động 1/2/3, m above the station datum) each water-level station
-- reported, so alert rules can use the station's own levels. One row per station; a reading older
-- than the stored one never overwrites it (late batches after an outage arrive out of order).
CREATE TABLE sensor_stations (
    agent_id        text NOT NULL,
    source_id       text NOT NULL,
    sensor_kind     text NOT NULL,
    alert_levels_m  float8[] NOT NULL,
    levels_time     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, source_id)
);
