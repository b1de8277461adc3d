-- The other Tributary slots of each source database, as its reader's leader measured them with its
-- own (src/pipeline/cdc/wal/other-slots.ts): slots named as Tributary names them for that database
-- (another deployment's, or one left over by a deployment that stopped for good), which retain WAL
-- on the source server without bound once nobody reads them. JSON `{ "slots": [{ "slotName",
-- "active", "retainedWalBytes" }], "leftOut": n }` (the 20 most retaining), NULL when not measured;
-- read by the `cdc.retained_wal` alert rule (src/pipeline/alerts/rules/cdc-rules.ts).
ALTER TABLE cdc_reader_status ADD COLUMN other_slots jsonb;
