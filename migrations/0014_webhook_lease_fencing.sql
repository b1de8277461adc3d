-- A lease is the holder's to finish: an attempt's record, a postponement or a release applies only
-- while the delivery still holds the lease its attempt was started under (leased_until, exact to
-- the microsecond, as the claim or the insert set it). A lease runs out while its holder is
-- still at work (a process stalled past it, Redis or Postgres away for a while); the delivery is
-- then claimed again, and the late holder's record would move it back — a delivered one pending
-- again (its lane's next already sent) or dead. A later claim always sets a later leased_until
-- (the earlier one had run out), so a record under an earlier lease matches no row.
--
-- A record that no longer holds its lease is still logged (the request went out) but moves
-- nothing; the statement says so per input (moved = false). The functions of migration 0012
-- stay for processes of the earlier version during an upgrade.
--
-- The attempt log also tells a retry from the attempt that started it: an attempt after the
-- first of its delivery is logged with trigger `retry` (the delivery keeps its own trigger:
-- initial, replay, manual or test).

-- As migration 0012's, plus each stored row's lease (null: not leased), to record under.
DROP FUNCTION tributary_webhook_insert_deliveries(text[], text[], text[], text[], text[], text[], text[], timestamptz[], boolean[], double precision);
CREATE FUNCTION tributary_webhook_insert_deliveries(
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

-- As migration 0012's, each input with the lease it was attempted under (leases[i]); returns per
-- input (n, from 1) whether the delivery moved (it still held that lease) and, when it finished,
-- its lane's next pending delivery.
CREATE FUNCTION tributary_webhook_record_attempts(
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
    UPDATE webhook_deliveries d SET state = i.state, attempts = d.attempts + 1, first_attempt_at = coalesce(d.first_attempt_at, now()),
      next_attempt_at = coalesce(i.next_at, d.next_attempt_at), leased_until = NULL, last_status = i.status, last_error = i.error,
      finished_at = CASE WHEN i.state = 'pending' THEN NULL ELSE now() END
    FROM input i WHERE d.id = i.id AND d.leased_until = i.lease AND d.state = 'pending'
    -- The dead letter's attempt says so, but for a 410: what the receiver answered (gone).
    RETURNING i.n, i.id, i.state, i.next_at, i.status, i.error, CASE WHEN i.state = 'dead' AND i.outcome <> 'gone' THEN 'dead' ELSE i.outcome END AS outcome,
              i.duration_ms, i.excerpt,
              d.endpoint_id, d.event_id, d.event_type, d.attempts, CASE WHEN d.attempts > 1 THEN 'retry' ELSE d.trigger END AS trigger, d.lane),
  -- Attempts whose lease had gone to another holder (rare): logged as the attempt the delivery was
  -- at, with what the receiver answered, without a next attempt — the holder's record decides that.
  superseded AS (
    SELECT i.n, i.id, i.status, i.error, i.outcome, i.duration_ms, i.excerpt,
           d.endpoint_id, d.event_id, d.event_type, d.attempts + 1 AS attempts, CASE WHEN d.attempts > 0 THEN 'retry' ELSE d.trigger END AS trigger,
           d.state, d.lane
      FROM input i JOIN webhook_deliveries d ON d.id = i.id
     WHERE i.n NOT IN (SELECT m.n FROM moved m)),
  logged AS (
    INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, event_type, attempt, trigger, outcome, status, duration_ms, error, response_excerpt, next_attempt_at)
    SELECT a.id, a.endpoint_id, a.event_id, a.event_type, a.attempts, a.trigger, a.outcome, a.status, a.duration_ms, a.error, a.excerpt, a.next_at
      FROM (SELECT m.n, m.id, m.endpoint_id, m.event_id, m.event_type, m.attempts, m.trigger, m.outcome, m.status, m.duration_ms, m.error, m.excerpt, m.next_at FROM moved m
            UNION ALL
            SELECT s.n, s.id, s.endpoint_id, s.event_id, s.event_type, s.attempts, s.trigger, s.outcome, s.status, s.duration_ms, s.error, s.excerpt, NULL::timestamptz FROM superseded s) a
     ORDER BY a.n)
  SELECT m.n, true, CASE WHEN m.state = 'pending' THEN NULL ELSE (
    SELECT d.id::text FROM webhook_deliveries d
     WHERE d.endpoint_id = m.endpoint_id AND d.lane = m.lane AND d.state = 'pending' AND d.id <> ALL(ids)
     ORDER BY d.id LIMIT 1) END
    FROM moved m
  UNION ALL
  -- One finished meanwhile (by the new holder, or by this very record when a first try committed
  -- but its answer was lost): its lane's next is named all the same — scheduling a head twice is harmless.
  SELECT s.n, false, CASE WHEN s.state = 'pending' THEN NULL ELSE (
    SELECT d.id::text FROM webhook_deliveries d
     WHERE d.endpoint_id = s.endpoint_id AND d.lane = s.lane AND d.state = 'pending' AND d.id <> ALL(ids)
     ORDER BY d.id LIMIT 1) END
    FROM superseded s;
END
$$;
