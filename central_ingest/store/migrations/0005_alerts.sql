-- 0005: the alert engine's state (alerts, alert_state, alert_transitions) and approved project plans.
--
-- alerts: one row per alert, its whole lifecycle (open -> acknowledged -> resolved) and the numbers that
-- triggered it. A hypertable partitioned on opened_at (30-day chunks: a province raises a few hundred
-- alerts a day), so the unique key is (alert_id, opened_at); alert_state keeps both for updates.
CREATE TABLE alerts (
    alert_id            uuid NOT NULL,
    opened_at           timestamptz NOT NULL,
    rule_id             text NOT NULL,
    rule_kind           text NOT NULL,
    subject             text NOT NULL,
    status              text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity            text NOT NULL CHECK (severity IN ('notice', 'warning', 'critical')),
    level               text,
    message_vi          text NOT NULL,
    message_en          text NOT NULL,
    value               double precision,
    baseline            double precision,
    threshold           double precision,
    "window"            text,
    episode             text,
    evidence            jsonb NOT NULL DEFAULT '[]',
    changed_at          timestamptz NOT NULL,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    acknowledge_comment text,
    resolved_at         timestamptz,
    resolved_by         text,
    resolve_comment     text,
    resolution          text CHECK (resolution IN ('cleared', 'period_ended', 'operator')),
    PRIMARY KEY (alert_id, opened_at),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
SELECT create_hypertable('alerts', by_range('opened_at', INTERVAL '30 days'));
-- The list API pages newest first by (opened_at, alert_id); the usual filters ride on these.
CREATE INDEX alerts_opened_idx ON alerts (opened_at DESC, alert_id DESC);
CREATE INDEX alerts_rule_subject_idx ON alerts (rule_id, subject, opened_at DESC);
CREATE INDEX alerts_status_idx ON alerts (status, opened_at DESC) WHERE status <> 'resolved';

-- One row per (rule, subject) ever evaluated: the open alert (deduplication: at most ONE open or
-- acknowledged alert per rule and subject; evaluators lock this row with SELECT ... FOR UPDATE) and
-- the last evaluation's status, e.g. insufficient_baseline, so nothing is silently "fine".
CREATE TABLE alert_state (
    rule_id         text NOT NULL,
    subject         text NOT NULL,
    alert_id        uuid,
    opened_at       timestamptz,
    level           text,
    level_rank      integer NOT NULL DEFAULT 0,
    severity        text,
    episode         text,
    -- An operator resolved the alert while its condition held: do not reopen until it clears.
    latched         boolean NOT NULL DEFAULT false,
    latched_episode text,
    status          text NOT NULL DEFAULT 'new',
    detail          jsonb NOT NULL DEFAULT '{}',
    pending_since   timestamptz,
    evaluated_at    timestamptz,
    PRIMARY KEY (rule_id, subject),
    CHECK ((alert_id IS NULL) = (opened_at IS NULL))
);
CREATE UNIQUE INDEX alert_state_alert_idx ON alert_state (alert_id) WHERE alert_id IS NOT NULL;

-- Every transition of every alert, for its history page and for audit (who acknowledged, when).
CREATE TABLE alert_transitions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id   uuid NOT NULL,
    opened_at  timestamptz NOT NULL,
    at         timestamptz NOT NULL,
    transition text NOT NULL CHECK (transition IN ('opened', 'escalated', 'updated', 'acknowledged', 'resolved')),
    status     text NOT NULL,
    level      text,
    severity   text NOT NULL,
    value      double precision,
    by_whom    text,
    comment    text,
    message_vi text NOT NULL,
    message_en text NOT NULL
);
CREATE INDEX alert_transitions_alert_idx ON alert_transitions (alert_id, id);

-- Approved construction plans, versioned: a re-approved plan is a new version, older ones stay.
CREATE TABLE project_plans (
    project_id   text NOT NULL,
    plan_version integer NOT NULL CHECK (plan_version >= 1),
    approved_at  timestamptz NOT NULL DEFAULT now(),
    note         text NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, plan_version)
);

-- package_id '' is the project as a whole (as in the progress table).
CREATE TABLE project_plan_points (
    project_id   text NOT NULL,
    plan_version integer NOT NULL,
    package_id   text NOT NULL DEFAULT '',
    date         date NOT NULL,
    planned_pct  double precision NOT NULL CHECK (planned_pct BETWEEN 0 AND 100),
    PRIMARY KEY (project_id, plan_version, package_id, date),
    FOREIGN KEY (project_id, plan_version) REFERENCES project_plans (project_id, plan_version) ON DELETE CASCADE
);
