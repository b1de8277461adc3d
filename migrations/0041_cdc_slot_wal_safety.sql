-- How far each source's slot is from being invalidated by the source server's
-- `max_slot_wal_keep_size`, as its reader's leader read it with the other figures
-- (src/pipeline/cdc/wal/slot-readings.ts): `pg_replication_slots.wal_status`, `safe_wal_size`
-- (bytes) and the setting (bytes; NULL when -1, no limit). Read by the `cdc.slot_at_risk` alert
-- rule (src/pipeline/alerts/rules/cdc-rules.ts) and `cdcSource.status`.
--
-- Additive and nullable, no default (no table rewrite). An instance of the previous version leading
-- a reader during a rolling upgrade updates its status without these columns, which would leave
-- them as a newer leader last wrote them: so `wal_safety_at` is written with them, and they are
-- read only while it equals `updated_at` (both `now()` of the same write) — else unknown.
ALTER TABLE cdc_reader_status
  ADD COLUMN wal_status text,
  ADD COLUMN safe_wal_bytes bigint,
  ADD COLUMN max_slot_wal_keep_bytes bigint,
  ADD COLUMN wal_safety_at timestamptz;
