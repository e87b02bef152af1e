-- 0011: evidence on demand. An officer asks for a keyframe that its agent has not uploaded (upload
-- policy `never`, or plate-pass keyframes under `violations`); central cannot call the agent (NAT, 4G),
-- so the request waits here and rides on the agent's next BatchAck (`evidence_wanted`). Code and rules:
-- central_ingest/plates/evidence_requests.py, docs/police_search.md.
--
-- One row per image (deduplicated by digest). `expires_at` ends the request; `fulfilled_at` is set when
-- the image arrives (PUT /api/v1/evidence/{sha256}). Rows are deleted some days after either (pruned on
-- the request path). Who asked, when and why is in the audit log (`evidence_request`), not here.
CREATE TABLE evidence_requests (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    agent_id     text NOT NULL,
    requested_at timestamptz NOT NULL,      -- the latest request for this image
    requests     integer NOT NULL DEFAULT 1 CHECK (requests >= 1),
    expires_at   timestamptz NOT NULL,
    last_sent_at timestamptz,               -- when an ack last carried it to the agent
    sends        integer NOT NULL DEFAULT 0 CHECK (sends >= 0),
    fulfilled_at timestamptz,
    CHECK (expires_at > requested_at)
);

-- The ack path: open requests of one agent, oldest first.
CREATE INDEX evidence_requests_open_by_agent ON evidence_requests (agent_id, requested_at)
    WHERE fulfilled_at IS NULL;
