-- Deliveries to an endpoint deleted meanwhile are skipped, not an error.
--
-- Every process keeps the endpoints in a cache refreshed every 2 s (endpoint-cache.ts). After
-- deleteWebhookEndpoint on one instance, another may still route events to the deleted endpoint
-- for up to that long; its insert then hit the foreign key on endpoint_id, and the whole statement
-- failed — the deliveries to every other endpoint stored with it, and the publish (or the outbox
-- or CDC batch) that routed them, answered with an error though the event was already in the log.
--
-- Each row now goes in only while its endpoint exists, checked under the lock the foreign key's
-- own check takes (FOR KEY SHARE): a delete under way is waited for, and once it has committed the
-- row is left out; a delete that comes after this insert removes the row with the endpoint (ON
-- DELETE CASCADE), as before. What was left out is not returned, like a duplicate initial delivery.

-- As migration 0014's, with the endpoint's existence checked per row.
CREATE OR REPLACE FUNCTION tributary_webhook_insert_deliveries(
  endpoint_ids text[], event_ids text[], event_types text[], topics text[], lanes text[], bodies text[], triggers text[],
  event_times timestamptz[], leases boolean[], lease_ms double precision)
RETURNS TABLE (id text, endpoint_id text, event_id text, leased boolean, next_attempt_at timestamptz, created_at timestamptz, head boolean, lease text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH inserted AS (
    INSERT INTO webhook_deliveries AS w (endpoint_id, event_id, event_type, topic, lane, body, trigger, event_time, leased_until)
    SELECT t.endpoint_id, t.event_id, t.event_type, t.topic, t.lane, t.body, t.trigger, t.event_time,
           CASE WHEN t.lease THEN now() + lease_ms * interval '1 millisecond' END
      FROM unnest(endpoint_ids, event_ids, event_types, topics, lanes, bodies, triggers, event_times, leases) WITH ORDINALITY
        AS t(endpoint_id, event_id, event_type, topic, lane, body, trigger, event_time, lease, n)
     WHERE EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.id = t.endpoint_id FOR KEY SHARE)
     ORDER BY t.n
    ON CONFLICT (endpoint_id, event_id) WHERE trigger = 'initial' DO NOTHING
    RETURNING w.id, w.endpoint_id, w.event_id, w.lane, w.leased_until, w.next_attempt_at, w.created_at)
  SELECT i.id::text, i.endpoint_id, i.event_id, i.leased_until IS NOT NULL, i.next_attempt_at, i.created_at,
         (SELECT 1 FROM webhook_deliveries e
           WHERE e.endpoint_id = i.endpoint_id AND e.lane = i.lane AND e.state = 'pending' AND e.id < i.id LIMIT 1) IS NULL
         AND i.id = min(i.id) OVER (PARTITION BY i.endpoint_id, i.lane),
         i.leased_until::text
    FROM inserted i
   ORDER BY i.id;
END
$$;
