-- A claim by id may take over a lease it is handed: with BullMQ, the insert of a new delivery
-- leases it for the worker of its own process, which then sends it without a claim in between
-- (webhook-handoff.ts), and the job that names it carries that lease. A worker of another process
-- that takes the job has no copy of the delivery: it claims the row by id, and the lease the job
-- carries (held[i]) counts as free — the row is leased again, under a lease of its own, as an
-- unleased or expired one would be. A job without a lease (null) claims as migration 0012's did.
--
-- The function of migration 0012 stays for processes of the earlier version during an upgrade.
-- Such a worker does not take a named lease over: a delivery stored by an upgraded process whose
-- job it takes waits for the insert's lease to run out, and the reconciler queues it again.
CREATE FUNCTION tributary_webhook_claim_ids(ids bigint[], held timestamptz[], lease_ms double precision)
RETURNS SETOF webhook_deliveries
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
BEGIN
  RETURN QUERY
  UPDATE webhook_deliveries d SET leased_until = now() + lease_ms * interval '1 millisecond'
   WHERE d.id IN (
     SELECT h.id FROM unnest(ids, held) AS t(id, held) JOIN webhook_deliveries h ON h.id = t.id
      WHERE h.state = 'pending' AND (h.leased_until IS NULL OR h.leased_until < now() OR h.leased_until = t.held)
        AND h.id = (SELECT min(e.id) FROM webhook_deliveries e WHERE e.endpoint_id = h.endpoint_id AND e.lane = h.lane AND e.state = 'pending')
      ORDER BY h.id
      FOR UPDATE OF h SKIP LOCKED)
  RETURNING d.*;
END
$$;
