-- 0008: schema 1.4 traffic (violation rule details, plate pass layout and vote, congestion) and the plate
-- vault: plates are stored sealed (AES-256-GCM) with a keyed blind index and partial-search tokens, never in
-- clear (docs/plate_vault.md). Evidence images uploaded by agents are stored sealed too.
--
-- Rows stored in clear by older versions cannot be encrypted here (SQL has no key). When a table holds such
-- rows its clear column is kept, renamed plate_legacy_clear, and the service seals them in Python at its next
-- start or `central-ingest migrate` (central_ingest/plates/legacy.py), then drops the column; without a
-- keyring it refuses to start and says so. On an empty table the clear column is dropped here.

-- Violations: the 1.4 fields, and the plate sealed.
ALTER TABLE violations
    ADD COLUMN rule_id           text,
    ADD COLUMN started_at        timestamptz,
    ADD COLUMN signal_state      text CHECK (signal_state IN ('red', 'amber', 'green', 'dark', 'unknown')),
    ADD COLUMN related_track_ids bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN plate_colour      text,
    ADD COLUMN plate_key_id      text,
    ADD COLUMN plate_ct          bytea,
    ADD CONSTRAINT violations_plate_sealed_check CHECK ((plate_ct IS NULL) = (plate_key_id IS NULL));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM violations WHERE plate IS NOT NULL) THEN
        ALTER TABLE violations RENAME COLUMN plate TO plate_legacy_clear;
    ELSE
        ALTER TABLE violations DROP COLUMN plate;
    END IF;
END
$$;

-- Plate passes: plate_ct = nonce || ciphertext || tag under data key plate_key_id; plate_bidx = truncated
-- HMAC-SHA256 of the compact plate under index key plate_index_key; plate_grams = keyed, truncated 3-gram
-- tokens (a padded set) for partial search.
DROP INDEX IF EXISTS plate_passes_plate_time_idx;
ALTER TABLE plate_passes
    ADD COLUMN plate_key_id    text,
    ADD COLUMN plate_ct        bytea,
    ADD COLUMN plate_bidx      bytea,
    ADD COLUMN plate_index_key text,
    ADD COLUMN plate_grams     integer[],
    ADD COLUMN plate_layout    text CHECK (plate_layout IN ('one_line', 'two_line')),
    ADD COLUMN format_valid    boolean,
    ADD COLUMN reads           integer CHECK (reads >= 1);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM plate_passes) THEN
        ALTER TABLE plate_passes RENAME COLUMN plate TO plate_legacy_clear;
        ALTER TABLE plate_passes ALTER COLUMN plate_legacy_clear DROP NOT NULL;
    ELSE
        ALTER TABLE plate_passes DROP COLUMN plate;
        ALTER TABLE plate_passes
            ALTER COLUMN plate_key_id SET NOT NULL,
            ALTER COLUMN plate_ct SET NOT NULL,
            ALTER COLUMN plate_bidx SET NOT NULL,
            ALTER COLUMN plate_index_key SET NOT NULL,
            ALTER COLUMN plate_grams SET NOT NULL;
    END IF;
END
$$;

-- Exact search: one plate over a time range, newest first, is one index range scan per chunk.
CREATE INDEX plate_passes_bidx_time_idx ON plate_passes (plate_bidx, time DESC);
-- Partial search: rows holding every token of a pattern.
CREATE INDEX plate_passes_grams_idx ON plate_passes USING gin (plate_grams);
-- No index on the key ids: rotation walks the table once in time order (the default time index), which
-- costs less than an index that every ingested row would pay for.

-- Congestion level of a zone (schema 1.4): level changes and periodic reports.
CREATE TABLE congestion (
    time               timestamptz NOT NULL,
    event_id           uuid NOT NULL,
    agent_id           text NOT NULL,
    source_id          text NOT NULL,
    zone_id            text NOT NULL,
    level              text NOT NULL CHECK (level IN ('free', 'light', 'moderate', 'heavy', 'jammed')),
    previous_level     text CHECK (previous_level IN ('free', 'light', 'moderate', 'heavy', 'jammed')),
    window_s           double precision NOT NULL CHECK (window_s > 0),
    vehicles           integer NOT NULL CHECK (vehicles >= 0),
    queue_length_ratio double precision NOT NULL CHECK (queue_length_ratio BETWEEN 0 AND 1),
    occupancy          double precision NOT NULL CHECK (occupancy BETWEEN 0 AND 1),
    speed_ratio        double precision CHECK (speed_ratio >= 0),
    schema_version     text NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time)
);
SELECT create_hypertable('congestion', by_range('time', INTERVAL '1 day'));
CREATE INDEX congestion_source_zone_time_idx ON congestion (source_id, zone_id, time DESC);

-- Evidence images (keyframes) uploaded by agents, sealed with the plate vault's data keys (AAD: digest and
-- agent). A plain table keyed by the SHA-256 of the image; retention deletes by time.
CREATE TABLE evidence_blobs (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    agent_id     text NOT NULL,
    content_type text NOT NULL,
    time         timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    key_id       text NOT NULL,
    sealed       bytea NOT NULL
);
CREATE INDEX evidence_blobs_time_idx ON evidence_blobs (time);
CREATE INDEX evidence_blobs_key_idx ON evidence_blobs (key_id);
