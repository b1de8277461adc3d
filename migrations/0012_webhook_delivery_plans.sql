-- The statements every webhook delivery runs — stored, claimed by id, recorded — as functions,
-- for one planner setting: planned once per connection, not at every call.
--
-- As prepared statements they were planned again on about half the calls: Postgres prices their
-- generic plan (it reckons with ten rows per array) above the custom ones (a row or two) and keeps
-- re-planning. At 1,000 deliveries/s a statement carries a row or two, and planning took as long as
-- executing: a third of Postgres's CPU per delivery (pg_stat_statements with track_planning).
--
-- A generic plan is kept until the table's statistics change, and those follow its growth: the
-- inserters analyze webhook_deliveries once they stored a fair part of it (delivery-statistics.ts),
-- which makes every connection plan again. What is left to rule out is a plan that is wrong for
-- every size the table reaches before that — one made while the table was all but empty, where
-- every way of reading it costs about the same:
--   * a lane's pending deliveries are read through the lane index only: sequential and bitmap scans
--     are priced out here, and the due index no longer answers a query that does not bound
--     next_attempt_at — its full scan (every pending delivery, for each probe) had won such ties;
--   * measured: with plans made on the empty table and 20,000 deliveries then stored in batches of
--     1,000 with no analyze between, a batch took 90 ms at first and 4.2 s at the end while the due
--     index still answered lane probes, 30–60 ms throughout since (test/integration/delivery-plans
--     .test.ts reads the plans).
-- The statements are those of delivery-store.ts, which documents what each one answers.

-- The due index serves the looks for due deliveries (claim_due, the reconciler), which bound
-- next_attempt_at; a strict bound proves the predicate, a lane probe does not.
DROP INDEX webhook_deliveries_due_idx;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending' AND next_attempt_at IS NOT NULL;

-- Inserts deliveries in order; an initial delivery of an event the endpoint already has is skipped;
-- leases[i] leases delivery i for lease_ms. Returns the stored rows, each with whether it is its
-- lane's head.
CREATE FUNCTION tributary_webhook_insert_deliveries(
  endpoint_ids text[], event_ids text[], event_types text[], topics text[], lanes text[], bodies text[], triggers text[],
  event_times timestamptz[], leases boolean[], lease_ms double precision)
RETURNS TABLE (id text, endpoint_id text, event_id text, leased boolean, next_attempt_at timestamptz, created_at timestamptz, head boolean)
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
     ORDER BY t.n
    ON CONFLICT (endpoint_id, event_id) WHERE trigger = 'initial' DO NOTHING
    RETURNING w.id, w.endpoint_id, w.event_id, w.lane, w.leased_until IS NOT NULL AS leased, w.next_attempt_at, w.created_at)
  -- A head: no pending delivery of its lane from before, and the first of its lane in this statement
  -- (the statement's own rows are not visible to its subqueries on the table; a window, not a
  -- subquery over the inserted rows, which would compare every row with every other).
  -- The lane probe is a scalar subquery, not NOT EXISTS: for a large batch the planner would hash
  -- every pending delivery instead (a scan of the whole backlog per insert).
  SELECT i.id::text, i.endpoint_id, i.event_id, i.leased, i.next_attempt_at, i.created_at,
         (SELECT 1 FROM webhook_deliveries e
           WHERE e.endpoint_id = i.endpoint_id AND e.lane = i.lane AND e.state = 'pending' AND e.id < i.id LIMIT 1) IS NULL
         AND i.id = min(i.id) OVER (PARTITION BY i.endpoint_id, i.lane)
    FROM inserted i
   ORDER BY i.id;
END
$$;

-- Leases those of ids that are pending, not leased and their lane's head; rows locked in id order,
-- rows another statement holds skipped (it is leasing or finishing them). Returns the leased rows.
CREATE FUNCTION tributary_webhook_claim_ids(ids bigint[], lease_ms double precision)
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
     SELECT h.id FROM webhook_deliveries h
      WHERE h.id = ANY(ids) AND h.state = 'pending' AND (h.leased_until IS NULL OR h.leased_until < now())
        AND h.id = (SELECT min(e.id) FROM webhook_deliveries e WHERE e.endpoint_id = h.endpoint_id AND e.lane = h.lane AND e.state = 'pending')
      ORDER BY h.id
      FOR UPDATE SKIP LOCKED)
  RETURNING d.*;
END
$$;

-- Records attempts and moves their deliveries on (delivered, dead, or pending until next_ats[i]),
-- releasing the leases, in one statement. Returns, per input (n, from 1), the lane's next pending
-- delivery when the delivery finished.
CREATE FUNCTION tributary_webhook_record_attempts(
  ids bigint[], states text[], next_ats timestamptz[], statuses integer[], errors text[], outcomes text[], durations integer[], excerpts text[])
RETURNS TABLE (n bigint, next text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT * FROM unnest(ids, states, next_ats, statuses, errors, outcomes, durations, excerpts) WITH ORDINALITY
      AS t(id, state, next_at, status, error, outcome, duration_ms, excerpt, n)),
  -- What the attempt log repeats of the delivery is taken from its row; the update hands on its
  -- input's columns too (no join of its rows with the input afterwards).
  moved AS (
    UPDATE webhook_deliveries d SET state = i.state, attempts = d.attempts + 1, first_attempt_at = coalesce(d.first_attempt_at, now()),
      next_attempt_at = coalesce(i.next_at, d.next_attempt_at), leased_until = NULL, last_status = i.status, last_error = i.error,
      finished_at = CASE WHEN i.state = 'pending' THEN NULL ELSE now() END
    FROM input i WHERE d.id = i.id
    RETURNING i.n, i.id, i.state, i.next_at, i.status, i.error, i.outcome, i.duration_ms, i.excerpt,
              d.endpoint_id, d.event_id, d.event_type, d.attempts, d.trigger, d.lane),
  logged AS (
    INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, event_type, attempt, trigger, outcome, status, duration_ms, error, response_excerpt, next_attempt_at)
    SELECT m.id, m.endpoint_id, m.event_id, m.event_type, m.attempts, m.trigger, m.outcome, m.status, m.duration_ms, m.error, m.excerpt, m.next_at
      FROM moved m ORDER BY m.n)
  -- The statement sees the table as it was before its own update: the deliveries it finishes are left out by id.
  SELECT m.n, CASE WHEN m.state = 'pending' THEN NULL ELSE (
    SELECT d.id::text FROM webhook_deliveries d
     WHERE d.endpoint_id = m.endpoint_id AND d.lane = m.lane AND d.state = 'pending' AND d.id <> ALL(ids)
     ORDER BY d.id LIMIT 1) END
    FROM moved m;
END
$$;
