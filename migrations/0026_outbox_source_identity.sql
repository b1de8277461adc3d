-- What an outbox's id stands for: the table its URL reaches (outbox-identity.ts), the database's
-- system identifier and name and the table's schema and name. The id was kept only while the URL's
-- text stayed the same, so a rotated password or an added application_name gave the same table a
-- new id, and its rows routed again came under new event ids. Null for outboxes saved by an
-- earlier version: the next setOutboxSource fills it, keeping the id when its URL names the same
-- host, port and database (the old URL cannot be asked: its password may be the rotated one).
ALTER TABLE outbox_sources ADD COLUMN source_identity text;
