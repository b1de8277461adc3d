-- The outbox's WAL mode (issue 10): the mode chosen when the outbox is set (AUTO resolves to WAL
-- when the database lets the role replicate, else POLL), whether rows need a tenant, and the
-- routing rate of every process reading an outbox, summed for its status (several workers poll one).
ALTER TABLE outbox_sources ADD COLUMN read_mode text NOT NULL DEFAULT 'POLL';
ALTER TABLE outbox_sources ADD COLUMN require_tenant boolean NOT NULL DEFAULT false;
ALTER TABLE outbox_sources DROP COLUMN mode;
ALTER TABLE outbox_sources DROP COLUMN routed_per_second;

CREATE TABLE outbox_rates (
  outbox_id          text             NOT NULL,
  -- The reporting process (random per process start).
  reporter           text             NOT NULL,
  routed_per_second  double precision NOT NULL,
  reported_at        timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (outbox_id, reporter)
);
