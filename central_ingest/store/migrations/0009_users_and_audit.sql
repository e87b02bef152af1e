-- 0009: people who sign in (users, sessions) and the append-only, hash-chained audit log.
--
-- Passwords are kept only as scrypt hashes with their parameters ("scrypt$ln=17,r=8,p=1$salt$hash"),
-- sessions only as the SHA-256 of their token. The audit log is written by
-- central_ingest.audit.log.append_audit and verified by central_ingest.audit.verify (see
-- docs/access_and_audit.md for the hash format).

CREATE TABLE users (
    user_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    display_name   text NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 200),
    password_hash  text NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
    roles          text[] NOT NULL CHECK (
        cardinality(roles) >= 1
        AND roles <@ ARRAY['operator', 'police', 'project_unit', 'technician', 'admin', 'auditor']::text[]
    ),
    -- RFC 6238 shared secret (raw bytes). Not encrypted here: see docs/access_and_audit.md.
    totp_secret    bytea CHECK (totp_secret IS NULL OR octet_length(totp_secret) BETWEEN 16 AND 64),
    -- The last 30 s step a code was accepted for: a code is good once (replays are refused).
    totp_last_step bigint,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_sessions (
    session_id   text PRIMARY KEY,
    token_sha256 bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    user_id      bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    client       text
);
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id);

-- The log. seq is assigned from audit_chain_head under its row lock, so it has no gaps (an
-- identity sequence would leave one at every rolled-back transaction) and the chain is a line.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY CHECK (seq >= 1),
    time         timestamptz NOT NULL,
    actor        text NOT NULL,
    role         text NOT NULL,
    action       text NOT NULL,
    target       jsonb NOT NULL CHECK (jsonb_typeof(target) = 'object'),
    reason       text,
    result_count bigint CHECK (result_count >= 0),
    client       text,
    prev_hash    text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash         text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_log_time_idx ON audit_log (time);
CREATE INDEX audit_log_actor_time_idx ON audit_log (actor, time);
CREATE INDEX audit_log_action_time_idx ON audit_log (action, time);

-- One row: the last entry's seq and hash. Appenders lock it FOR UPDATE, which serialises them.
CREATE TABLE audit_chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL CHECK (seq >= 0),
    hash      text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
INSERT INTO audit_chain_head (singleton, seq, hash) VALUES (true, 0, repeat('0', 64));

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- An insert must extend the chain exactly: next seq, previous hash (a writer that skipped the head lock,
-- or a hand-made row, fails here instead of forking the chain).
CREATE FUNCTION audit_log_check_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head audit_chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM audit_chain_head WHERE singleton;
    IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
        RAISE EXCEPTION 'audit_log entry % does not extend the chain head (seq %)', NEW.seq, head.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash WHERE singleton;
    RETURN NEW;
END;
$$;

CREATE FUNCTION audit_chain_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.seq = OLD.seq + 1 THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_chain_head only moves forward one entry at a time: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_link BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_check_link();
CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Privileges: the owner (the role that runs migrations) keeps none that could rewrite history. A
-- superuser or the owner can still take them back or disable the triggers: the hash chain, verified
-- against an anchored head, is what detects that (docs/access_and_audit.md).
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;
REVOKE DELETE, TRUNCATE ON audit_chain_head FROM CURRENT_USER;

-- A deployment that runs the service as its own role (not the owner) names it ioc_central_app;
-- that role gets exactly what the service needs on these tables.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ioc_central_app') THEN
        GRANT SELECT, INSERT ON audit_log TO ioc_central_app;
        GRANT SELECT, UPDATE ON audit_chain_head TO ioc_central_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON users, user_sessions TO ioc_central_app;
    END IF;
END;
$$;
