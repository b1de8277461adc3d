-- One replication slot per deployment (a platform database and its instances). Slot names were
-- derived from the source database alone, so two deployments reading one database read one slot:
-- each confirmed changes the other then never got, and a starting reader terminated the other's
-- walsender. A deployment's id now gives the slot names it derives their last part
-- (src/pipeline/cdc/deployment-slots.ts).
--
-- The id is made by the first start that reads CDC, not here: a copy of this database made before
-- that (a template) would share it. A deployment that read CDC before this migration keeps the
-- names it had (legacy_slot_names): its slots, and their positions, carry on through the upgrade.
-- Its row is made here, as only here can it be told from a new one.
CREATE TABLE cdc_deployment (
  singleton          boolean      PRIMARY KEY DEFAULT true CHECK (singleton),
  id                 text         NOT NULL,
  legacy_slot_names  boolean      NOT NULL DEFAULT false,
  created_at         timestamptz  NOT NULL DEFAULT now()
);

INSERT INTO cdc_deployment (id, legacy_slot_names)
SELECT gen_random_uuid()::text, true
 WHERE EXISTS (SELECT 1 FROM cdc_sources)
    OR EXISTS (SELECT 1 FROM cdc_reader_status)
    OR EXISTS (SELECT 1 FROM cdc_retired_slots)
    OR EXISTS (SELECT 1 FROM outbox_sources WHERE read_mode = 'WAL');
