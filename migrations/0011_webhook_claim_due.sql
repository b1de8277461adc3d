-- The embedded loop's look at the table: lease up to max_rows due lane heads, oldest due first,
-- skipping the endpoints in skip_endpoints; returns the leased rows.
--
-- A function for its planner settings. The only good plan walks the due index in order and stops
-- at the limit. But statistics taken while few deliveries were pending (a table of delivered rows
-- in steady state, or a young one) make the planner expect a handful of due rows, and it then
-- picks a bitmap scan of every pending delivery and a sort of them all — measured at 50,000
-- pending: 50 ms a claim instead of ~1, exactly while a backlog is being worked off, until the
-- next ANALYZE. Here every other way of reading the rows is priced out.
CREATE FUNCTION tributary_webhook_claim_due(max_rows integer, lease_ms double precision, skip_endpoints text[])
RETURNS SETOF webhook_deliveries
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
SET enable_sort = off
AS $$
BEGIN
  RETURN QUERY
  UPDATE webhook_deliveries d SET leased_until = now() + lease_ms * interval '1 millisecond'
   WHERE d.id IN (
     SELECT h.id FROM webhook_deliveries h
      WHERE h.state = 'pending' AND h.next_attempt_at <= now() AND (h.leased_until IS NULL OR h.leased_until < now())
        AND NOT (h.endpoint_id = ANY(skip_endpoints))
        -- Its lane's head: one probe of the lane index (see IS_LANE_HEAD in delivery-store.ts).
        AND h.id = (SELECT min(e.id) FROM webhook_deliveries e WHERE e.endpoint_id = h.endpoint_id AND e.lane = h.lane AND e.state = 'pending')
      -- The due index's order (ties: the order rows were stored in), so the scan stops at the limit.
      ORDER BY h.next_attempt_at
      LIMIT max_rows
      FOR UPDATE SKIP LOCKED)
  RETURNING d.*;
END
$$;
