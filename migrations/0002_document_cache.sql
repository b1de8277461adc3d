-- The Redis hot cache in front of sync_documents (SYNC_DURABILITY=async|sync).
--
-- ceiling: the highest revision the cache may acknowledge before Postgres hears of it. The cache
--   refuses to go past it, and the ceiling is raised in Postgres first, so after Redis loses its
--   data no acknowledged revision is above the stored ceiling.
-- cache_epoch: the Redis cache generation that last raised the ceiling. A document loaded into a
--   cache of another generation (Redis lost its data or restarted since) resumes above the
--   ceiling, so its revisions never go backwards.
-- A row may be a placeholder at revision 0 (deleted): it holds the ceiling of a document created
--   in the cache and not flushed yet.
ALTER TABLE sync_documents DROP CONSTRAINT sync_documents_revision_check;
ALTER TABLE sync_documents ADD CONSTRAINT sync_documents_revision_check CHECK (revision >= 0);
ALTER TABLE sync_documents ADD COLUMN ceiling integer NOT NULL DEFAULT 0;
ALTER TABLE sync_documents ADD COLUMN cache_epoch text;
