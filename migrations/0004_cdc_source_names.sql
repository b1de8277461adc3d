-- Per-source replication names (issue 9, defect b): a source may name its slot and publication;
-- NULL means the names derived from the database's identity (src/pipeline/cdc/wal/replication-names.ts).
ALTER TABLE cdc_sources ADD COLUMN slot_name text;
ALTER TABLE cdc_sources ADD COLUMN publication_name text;
