-- Database CDC (seed 000, "Path 1: Database CDC"; issue 5).

-- An application environment's CDC target (the seed's Application.config.cdc[env]). One reader
-- runs per distinct database_url, however many environments point at it.
CREATE TABLE cdc_sources (
  app           text        NOT NULL,
  env           text        NOT NULL,
  database_url  text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app, env)
);

-- Domain mappings of an environment, by name; `definition` is the validated mapping JSON.
CREATE TABLE cdc_mappings (
  app         text        NOT NULL,
  env         text        NOT NULL,
  name        text        NOT NULL,
  definition  jsonb       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app, env, name)
);

-- Raw changes as received, kept for a bounded time (CDC_EVENTS_RETENTION_SECONDS) for audit and
-- debugging; `source` is the reader's id (a hash of its database URL).
CREATE TABLE cdc_events (
  id           bigserial   PRIMARY KEY,
  source       text        NOT NULL,
  lsn          text        NOT NULL,
  commit_lsn   text        NOT NULL,
  xid          bigint      NOT NULL,
  table_name   text        NOT NULL,
  operation    text        NOT NULL,
  new_row      jsonb,
  old_row      jsonb,
  received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cdc_events_received_at ON cdc_events (received_at);

-- The last known state of each reader, written by the instance that leads it.
CREATE TABLE cdc_reader_status (
  source              text        PRIMARY KEY,
  state               text        NOT NULL,
  leader              text,
  last_lsn            text,
  lag_bytes           bigint,
  retained_wal_bytes  bigint,
  last_error          text,
  updated_at          timestamptz NOT NULL DEFAULT now()
);
