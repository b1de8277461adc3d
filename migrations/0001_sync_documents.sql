-- Durable store of the sync service (seed 000, "Path 2: Sync Service"): revisioned JSON documents.
-- Documents are scoped like every event: application, environment and tenant ('' when the
-- writer's token has none). Redis, when configured, is the hot cache in front of this table.
CREATE TABLE sync_documents (
  app         text        NOT NULL,
  env         text        NOT NULL,
  tenant      text        NOT NULL DEFAULT '',
  service     text        NOT NULL,
  id          text        NOT NULL,
  revision    integer     NOT NULL CHECK (revision > 0),
  data        jsonb       NOT NULL,
  deleted     boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app, env, tenant, service, id)
);

