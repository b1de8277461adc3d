-- Alerts with a lifecycle (issue 12, part 4). One row per (rule, subject, scope) ever: its id is
-- derived from that key, and a resolved alert that fires again re-opens the same row (`count` + 1),
-- so a flapping endpoint is one alert, not a stream of them.
CREATE TABLE alerts (
  id               text             PRIMARY KEY,
  rule             text             NOT NULL,
  -- What it is about: `endpoint:<id>`, `outbox:<app>/<env>`, `cdc:<source>`, `cluster`.
  subject          text             NOT NULL,
  app              text             NOT NULL,
  env              text             NOT NULL,
  tenant           text,
  -- warning or critical; only raised while open, set again when it re-opens.
  severity         text             NOT NULL,
  -- firing, acknowledged or resolved.
  state            text             NOT NULL,
  -- Times it fired (re-openings included).
  count            integer          NOT NULL DEFAULT 1,
  first_fired_at   timestamptz      NOT NULL DEFAULT now(),
  last_fired_at    timestamptz      NOT NULL DEFAULT now(),
  acknowledged_at  timestamptz,
  acknowledged_by  text,
  resolved_at      timestamptz,
  -- The figure at the last change (a failure ratio, a count, seconds, bytes).
  last_value       double precision,
  message          text             NOT NULL,
  -- The last change (fired, escalated, acknowledged, resolved) and whether its event was routed:
  -- a change is written first and announced after, again by the next evaluation if the process
  -- died in between (the event's id is derived from the change, so receivers see one).
  last_change      text             NOT NULL DEFAULT 'fired',
  announced        boolean          NOT NULL DEFAULT false,
  -- Bumped by every change: an announcement marks only the change it routed.
  version          integer          NOT NULL DEFAULT 1,
  updated_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX alerts_unannounced_idx ON alerts (updated_at) WHERE NOT announced;
CREATE INDEX alerts_scope_idx ON alerts (app, env, last_fired_at DESC, id DESC);
CREATE INDEX alerts_open_idx ON alerts (rule) WHERE state <> 'resolved';

-- The hysteresis counters of each (rule, subject, scope) the evaluator has seen bad lately or
-- that has an open alert (the id is the alert's): kept here so a restart or another evaluating
-- process continues the streaks instead of starting over.
CREATE TABLE alert_trackers (
  id               text        PRIMARY KEY,
  rule             text        NOT NULL,
  subject          text        NOT NULL,
  app              text        NOT NULL,
  env              text        NOT NULL,
  tenant           text,
  bad_streak       integer     NOT NULL,
  critical_streak  integer     NOT NULL,
  good_streak      integer     NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Which process evaluates the rules (one at a time cluster-wide, in every database mode): a lease
-- taken when free or expired, renewed every evaluation, and checked again in the transaction that
-- writes an evaluation's outcome (a process that lost it writes nothing).
CREATE TABLE alert_evaluator (
  id          integer     PRIMARY KEY CHECK (id = 1),
  holder      text        NOT NULL,
  expires_at  timestamptz NOT NULL
);

-- What the CDC leader reports for the alert rules: the environments reading a source (its status
-- is per database) and when its replication slot was last found lost and recreated.
ALTER TABLE cdc_reader_status ADD COLUMN environments jsonb;
ALTER TABLE cdc_reader_status ADD COLUMN slot_lost_at timestamptz;
