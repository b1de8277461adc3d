-- tributary:no-transaction
-- `documents(service)` pages through a service's live documents by id in byte order
-- (document-store.ts `listLiveDocuments`: `id COLLATE "C" > $after ORDER BY id COLLATE "C" LIMIT n`).
-- The primary key orders ids by the database's default collation, which is not byte order (and
-- differs between servers), so no index served that order: every page read and sorted all of the
-- service's rows — 58 to 159 ms a page of 50 with 100,000 documents, growing with the service.
-- This index holds the order the listing asks for, so a page reads its rows and stops.
--
-- Partial (live documents only): the listing never wants tombstones or placeholders (revision 0),
-- so they cost it nothing, and a service that deletes much keeps a small index.
--
-- Built concurrently (outside a transaction; rules in src/db/migrations.ts): sync_documents can
-- be large, and a plain CREATE INDEX would hold off every document write while it builds. The drop
-- first removes an INVALID index a failed build may have left.
DROP INDEX CONCURRENTLY IF EXISTS sync_documents_live_by_id;
CREATE INDEX CONCURRENTLY sync_documents_live_by_id ON sync_documents (app, env, tenant, service, id COLLATE "C") WHERE NOT deleted;
