-- Document changes saved but whose event is not known to be published yet (pipeline/sync/
-- unpublished-events.ts). A row is written in the same transaction or statement as the change it
-- announces (the Postgres-only service's write; in sync durability the cache's flush), and
-- deleted once the event is in the log. A row still here `due_at` (a few seconds after the change:
-- its writer died before publishing, or the event log refused the event) is published again by a
-- sweep, with the same event id, before any later revision of the same document.
-- In async durability the cache keeps these marks in Redis instead (the change lives there first).
--
-- event: the event as it was to be published (`{ id, operation, scope, payload }`), kept as
--   written (json, not jsonb: the same key order and numbers when published again).
CREATE TABLE sync_unpublished_events (
  app       text        NOT NULL,
  env       text        NOT NULL,
  tenant    text        NOT NULL,
  service   text        NOT NULL,
  id        text        NOT NULL,
  revision  integer     NOT NULL,
  event     json        NOT NULL,
  due_at    timestamptz NOT NULL,
  PRIMARY KEY (app, env, tenant, service, id, revision)
);
CREATE INDEX sync_unpublished_events_due ON sync_unpublished_events (due_at);
