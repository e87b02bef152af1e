-- 0010: the registry of camera and sensor sites: where each source stands, for the maps and the
-- police search page. Filled by `central-ingest cameras import FILE` (configs/sites.example.yaml).
--
-- A source is known by (agent_id, id), the same pair its events carry as (agent_id, source_id):
-- source ids are only unique within one agent. Coordinates are WGS 84 degrees.
CREATE TABLE camera_sites (
    agent_id   text NOT NULL,
    id         text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('camera', 'sensor')),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    lat        double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon        double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    area       text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, id)
);
