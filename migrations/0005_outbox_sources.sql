-- The outbox (issue 10): an environment's outbox table in its application's database, and the
-- figures the workers that poll it last reported (read by the admin API on any instance).
CREATE TABLE outbox_sources (
  app                     text        NOT NULL,
  env                     text        NOT NULL,
  -- Event ids derive from it and the row id: kept while database and table stay the same, new
  -- when either changes (row ids of another table would repeat the old ones).
  outbox_id               text        NOT NULL,
  database_url            text        NOT NULL,
  table_name              text        NOT NULL,
  -- What the environment asked for (AUTO or POLL); the workers report the mode in effect.
  requested_mode          text        NOT NULL,
  updated_at              timestamptz NOT NULL DEFAULT now(),
  mode                    text,
  pending                 integer,
  oldest_pending_seconds  double precision,
  dead                    integer,
  routed_per_second       double precision,
  last_error              text,
  reported_at             timestamptz,
  PRIMARY KEY (app, env)
);
