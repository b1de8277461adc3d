-- Per-topic analytics (issue 12): one row per topic per minute, flushed by the workers from the
-- counts every instance pushed (Redis, or memory when embedded); rolled up to hours and days.
-- `tenant` is '' for application-wide events (part of the key, so not null). Counts are whole
-- numbers; `latency` holds publish → socket latency counts per fixed bucket
-- (src/pipeline/analytics/latency-histogram.ts; '{}' when there was no live delivery).
CREATE TABLE topic_stats_minute (
  app                text        NOT NULL,
  env                text        NOT NULL,
  tenant             text        NOT NULL,
  topic              text        NOT NULL,
  start_time         timestamptz NOT NULL,
  events_database    bigint      NOT NULL DEFAULT 0,
  events_sync        bigint      NOT NULL DEFAULT 0,
  events_socket      bigint      NOT NULL DEFAULT 0,
  events_system      bigint      NOT NULL DEFAULT 0,
  deliveries         bigint      NOT NULL DEFAULT 0,
  bytes              bigint      NOT NULL DEFAULT 0,
  webhook_delivered  bigint      NOT NULL DEFAULT 0,
  webhook_failed     bigint      NOT NULL DEFAULT 0,
  resyncs            bigint      NOT NULL DEFAULT 0,
  latency            bigint[]    NOT NULL DEFAULT '{}',
  PRIMARY KEY (app, env, topic, tenant, start_time)
);
-- Hot topics read an environment's recent minutes; pruning reads by age.
CREATE INDEX topic_stats_minute_recent_idx ON topic_stats_minute (app, env, start_time);
CREATE INDEX topic_stats_minute_age_idx ON topic_stats_minute (start_time);

CREATE TABLE topic_stats_hour (LIKE topic_stats_minute INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE topic_stats_hour ADD PRIMARY KEY (app, env, topic, tenant, start_time);

CREATE TABLE topic_stats_day (LIKE topic_stats_minute INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE topic_stats_day ADD PRIMARY KEY (app, env, topic, tenant, start_time);

-- The minutes already flushed: a minute is written once, whichever worker comes first, and counts
-- pushed for it later (past the grace) are dropped instead of counted twice.
CREATE TABLE topic_stats_flushed (
  start_time  timestamptz PRIMARY KEY,
  flushed_at  timestamptz NOT NULL DEFAULT now()
);
