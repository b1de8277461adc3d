-- tributary:no-transaction
-- "Did evt_X reach this endpoint?": webhookDeliveries(eventId:) (delivery-log.ts) finds an event's
-- initial deliveries through webhook_deliveries_initial_idx (endpoint_id, event_id), and its
-- replays', redeliveries' and tests' through this index, which holds only those: the initial
-- deliveries — every routed event's, the delivery path's hot insert — pay for no new index.
-- (webhookAttempts(eventId:) walks the endpoints' attempts, as its deliveryId filter does: an index
-- there would cost every attempt's record.)
--
-- Built concurrently (outside a transaction; rules in src/db/migrations.ts): the table is written
-- by every delivery, and a plain CREATE INDEX would hold off the deliveries while it builds.
-- The drop first removes an INVALID index a failed build may have left.
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_event_idx;
CREATE INDEX CONCURRENTLY webhook_deliveries_event_idx ON webhook_deliveries (event_id) WHERE trigger <> 'initial';
