-- Less of Postgres's work per webhook delivery, found by profiling the drain of a backlog (the
-- embedded loop's claims and the deliverer's records; every event its own lane, as events
-- without an entity are): the same answers and locks, fewer index pages read.
--
-- 1. A delivery on its event's own lane (`event:` + its event id, endpoint-selection.ts) shares
--    that lane only with deliveries of the same event to the same endpoint, and an initial
--    delivery is the only one of its event per endpoint (webhook_deliveries_initial_idx). So
--    besides an initial delivery its lane holds only replays, redeliveries and tests of its event,
--    which webhook_deliveries_event_idx holds (migration 0035: routed deliveries never enter it, so
--    it stays small). Whether such a delivery is its lane's head (the insert, both claims) and which
--    delivery follows it (the record) is now read there. The lane index (endpoint, lane, id: two
--    text keys over every pending delivery, and the entries of the finished ones until vacuum) took
--    a descent per probe, and those probes were a fifth of Postgres's CPU per delivery in the
--    drain; the event index usually holds no entry for the event at all. Every other delivery is
--    probed through the lane index as before.
--    The event index is read in a fenced subquery (OFFSET 0): the conditions on endpoint, lane and
--    state stay outside it, so no plan (made once per connection, maybe on an empty table) can
--    answer it through another index: the admin-pending or the endpoint index, each a walk of many
--    rows for a probe that wants one.
-- 2. A lane probe stops short of the delivery itself. A head is its lane's oldest pending
--    delivery: a claim asks for a pending one before it (`e.id < h.id`) instead of the lane's
--    minimum, which was the delivery itself, read from the heap to tell. A record asks for the next
--    after the finished one (`d.id > m.id`): only a lane's head is attempted, and a lane's later
--    deliveries have larger ids.
-- 3. The embedded loop's look (tributary_webhook_claim_due) updates the rows it locked by their
--    tuple id instead of finding them through the primary key again. A row locked in a version
--    newer than the statement's snapshot (an expired lease given back by another process at that
--    very moment) is then neither updated nor returned: it stays as that process left it, due.
-- 4. A claim by id and a record find their rows by id only. Their state test is an expression
--    (`state || ''`) that no partial index's predicate matches: with plans made while the table
--    was near empty, Postgres had walked the lane index's every pending delivery to join them with
--    the statement's ids (a claim of one id among 3,000 pending: 21 ms) until the table was
--    analyzed again (test/integration/delivery-own-lanes.test.ts reads those plans).
--
-- Processes of the previous version call these same functions (same names, arguments and
-- answers) during an upgrade.

CREATE OR REPLACE FUNCTION tributary_webhook_claim_due(max_rows integer, lease_ms double precision, skip_endpoints text[])
RETURNS SETOF webhook_deliveries
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  RETURN QUERY
  UPDATE webhook_deliveries d SET leased_until = now() + lease_ms * interval '1 millisecond'
   WHERE d.ctid = ANY (ARRAY(
     SELECT h.ctid FROM webhook_deliveries h
      WHERE h.state = 'pending' AND h.next_attempt_at <= now() AND (h.leased_until IS NULL OR h.leased_until < now())
        AND NOT (h.endpoint_id = ANY(skip_endpoints))
        -- Its lane's head: no pending delivery of its lane before it.
        AND CASE WHEN h.trigger = 'initial' AND h.lane = 'event:' || h.event_id
              THEN (SELECT 1 FROM (SELECT e.id, e.endpoint_id, e.lane, e.state FROM webhook_deliveries e WHERE e.event_id = h.event_id AND e.trigger <> 'initial' OFFSET 0) x
                     WHERE x.endpoint_id = h.endpoint_id AND x.lane = h.lane AND x.state = 'pending' AND x.id < h.id LIMIT 1) IS NULL
              ELSE (SELECT 1 FROM webhook_deliveries e WHERE e.endpoint_id = h.endpoint_id AND e.lane = h.lane AND e.state = 'pending' AND e.id < h.id LIMIT 1) IS NULL END
      -- The due index's order (ties: the order rows were stored in), so the scan stops at the limit.
      ORDER BY h.next_attempt_at
      LIMIT max_rows
      FOR UPDATE SKIP LOCKED))
  RETURNING d.*;
END
$$;

CREATE OR REPLACE FUNCTION tributary_webhook_claim_ids(ids bigint[], held timestamptz[], lease_ms double precision)
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
      -- The state as an expression: h is found by id, never through a partial index (4. above).
      WHERE h.state || '' = 'pending' AND (h.leased_until IS NULL OR h.leased_until < now() OR h.leased_until = t.held)
        AND CASE WHEN h.trigger = 'initial' AND h.lane = 'event:' || h.event_id
              THEN (SELECT 1 FROM (SELECT e.id, e.endpoint_id, e.lane, e.state FROM webhook_deliveries e WHERE e.event_id = h.event_id AND e.trigger <> 'initial' OFFSET 0) x
                     WHERE x.endpoint_id = h.endpoint_id AND x.lane = h.lane AND x.state = 'pending' AND x.id < h.id LIMIT 1) IS NULL
              ELSE (SELECT 1 FROM webhook_deliveries e WHERE e.endpoint_id = h.endpoint_id AND e.lane = h.lane AND e.state = 'pending' AND e.id < h.id LIMIT 1) IS NULL END
      ORDER BY h.id
      FOR UPDATE OF h SKIP LOCKED)
  RETURNING d.*;
END
$$;

-- As migration 0028's, but for the probe of the lane's next (1. and 2. above) and the rows found by id (4.).
CREATE OR REPLACE FUNCTION tributary_webhook_record_attempts(
  ids bigint[], leases timestamptz[], states text[], next_ats timestamptz[], statuses integer[], errors text[], outcomes text[], durations integer[], excerpts text[])
RETURNS TABLE (n bigint, moved boolean, next text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT * FROM unnest(ids, leases, states, next_ats, statuses, errors, outcomes, durations, excerpts) WITH ORDINALITY
      AS t(id, lease, state, next_at, status, error, outcome, duration_ms, excerpt, n)),
  moved AS (
    -- A cut moves the delivery on (due again, the lease released, last_lease kept: a retried record
    -- of it still logs it once) and touches nothing that stands for the receiver's attempts.
    UPDATE webhook_deliveries d SET state = i.state, attempts = d.attempts + CASE WHEN i.outcome = 'cut' THEN 0 ELSE 1 END,
      first_attempt_at = CASE WHEN i.outcome = 'cut' THEN d.first_attempt_at ELSE coalesce(d.first_attempt_at, now()) END,
      next_attempt_at = coalesce(i.next_at, d.next_attempt_at), leased_until = NULL, last_lease = i.lease,
      last_status = CASE WHEN i.outcome = 'cut' THEN d.last_status ELSE i.status END, last_error = CASE WHEN i.outcome = 'cut' THEN d.last_error ELSE i.error END,
      finished_at = CASE WHEN i.state = 'pending' THEN NULL ELSE now() END
    -- The state as an expression: d is found by id, never through a partial index (4. above).
    FROM input i WHERE d.id = i.id AND d.leased_until = i.lease AND d.state || '' = 'pending'
    -- The dead letter's attempt says so, but for a 410: what the receiver answered (gone).
    RETURNING i.n, i.id, i.state, i.next_at, i.status, i.error, CASE WHEN i.state = 'dead' AND i.outcome <> 'gone' THEN 'dead' ELSE i.outcome END AS outcome,
              i.duration_ms, i.excerpt,
              -- d is the row as updated: a cut, not counted, is logged as the attempt it would have
              -- been — the number (and trigger) the next counted attempt is logged with again.
              d.endpoint_id, d.event_id, d.event_type, d.attempts + CASE WHEN i.outcome = 'cut' THEN 1 ELSE 0 END AS attempts,
              CASE WHEN d.attempts > CASE WHEN i.outcome = 'cut' THEN 0 ELSE 1 END THEN 'retry' ELSE d.trigger END AS trigger, d.lane,
              d.trigger = 'initial' AND d.lane = 'event:' || d.event_id AS own_initial),
  -- Attempts whose lease had gone (rare), each with whether it is this very record's, already
  -- logged (its lease is the delivery's last_lease) or a late holder's, logged here as the attempt
  -- the delivery was at, with what the receiver answered, without a next attempt.
  superseded AS (
    SELECT i.n, i.id, i.status, i.error, i.outcome, i.duration_ms, i.excerpt,
           d.endpoint_id, d.event_id, d.event_type, d.attempts + 1 AS attempts, CASE WHEN d.attempts > 0 THEN 'retry' ELSE d.trigger END AS trigger,
           d.state, d.lane, d.last_lease = i.lease AS recorded
      FROM input i JOIN webhook_deliveries d ON d.id = i.id
     WHERE i.n NOT IN (SELECT m.n FROM moved m)),
  logged AS (
    INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, event_type, attempt, trigger, outcome, status, duration_ms, error, response_excerpt, next_attempt_at)
    SELECT a.id, a.endpoint_id, a.event_id, a.event_type, a.attempts, a.trigger, a.outcome, a.status, a.duration_ms, a.error, a.excerpt, a.next_at
      FROM (SELECT m.n, m.id, m.endpoint_id, m.event_id, m.event_type, m.attempts, m.trigger, m.outcome, m.status, m.duration_ms, m.error, m.excerpt, m.next_at FROM moved m
            UNION ALL
            SELECT s.n, s.id, s.endpoint_id, s.event_id, s.event_type, s.attempts, s.trigger, s.outcome, s.status, s.duration_ms, s.error, s.excerpt, NULL::timestamptz
              FROM superseded s WHERE s.recorded IS NOT TRUE) a
     ORDER BY a.n)
  -- The statement sees the table as it was before its own update: the deliveries it finishes are
  -- left out by id. The lane's next comes after the finished delivery, which was its lane's head.
  SELECT m.n, true, CASE WHEN m.state = 'pending' THEN NULL
    WHEN m.own_initial THEN (
      SELECT x.id::text FROM (SELECT e.id, e.endpoint_id, e.lane, e.state FROM webhook_deliveries e WHERE e.event_id = m.event_id AND e.trigger <> 'initial' OFFSET 0) x
       WHERE x.endpoint_id = m.endpoint_id AND x.lane = m.lane AND x.state = 'pending' AND x.id > m.id AND x.id <> ALL(ids)
       ORDER BY x.id LIMIT 1)
    ELSE (
      SELECT d.id::text FROM webhook_deliveries d
       WHERE d.endpoint_id = m.endpoint_id AND d.lane = m.lane AND d.state = 'pending' AND d.id > m.id AND d.id <> ALL(ids)
       ORDER BY d.id LIMIT 1) END
    FROM moved m
  UNION ALL
  -- This very record's (moved: its first try did), or one finished meanwhile by the new holder:
  -- its lane's next is named all the same — scheduling a head twice is harmless.
  SELECT s.n, s.recorded IS TRUE, CASE WHEN s.state = 'pending' THEN NULL ELSE (
    SELECT d.id::text FROM webhook_deliveries d
     WHERE d.endpoint_id = s.endpoint_id AND d.lane = s.lane AND d.state = 'pending' AND d.id <> ALL(ids)
     ORDER BY d.id LIMIT 1) END
    FROM superseded s;
END
$$;

-- As migration 0019's, but for the probe of an initial delivery on its event's own lane (1. above).
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
    RETURNING w.id, w.endpoint_id, w.event_id, w.lane, w.leased_until, w.next_attempt_at, w.created_at, w.trigger = 'initial' AND w.lane = 'event:' || w.event_id AS own_initial)
  SELECT i.id::text, i.endpoint_id, i.event_id, i.leased_until IS NOT NULL, i.next_attempt_at, i.created_at,
         CASE WHEN i.own_initial
           THEN (SELECT 1 FROM (SELECT e.id, e.endpoint_id, e.lane, e.state FROM webhook_deliveries e WHERE e.event_id = i.event_id AND e.trigger <> 'initial' OFFSET 0) x
                  WHERE x.endpoint_id = i.endpoint_id AND x.lane = i.lane AND x.state = 'pending' AND x.id < i.id LIMIT 1) IS NULL
           ELSE (SELECT 1 FROM webhook_deliveries e
                  WHERE e.endpoint_id = i.endpoint_id AND e.lane = i.lane AND e.state = 'pending' AND e.id < i.id LIMIT 1) IS NULL END
         AND i.id = min(i.id) OVER (PARTITION BY i.endpoint_id, i.lane),
         i.leased_until::text
    FROM inserted i
   ORDER BY i.id;
END
$$;
