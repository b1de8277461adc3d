-- A deleted document keeps a tombstone — its revision and times, so that a re-creation continues
-- its revisions — and, before this version, also its whole content: whatever the document held
-- (personal data included) stayed in the platform database for as long as the row. Deletions now
-- store `{}` (document-writes.ts); this clears the tombstones written before.
UPDATE sync_documents SET data = '{}'::jsonb WHERE deleted AND data <> '{}'::jsonb;
