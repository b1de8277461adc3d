-- Two mends of migration 0015's, found in review.
--
-- The count of an endpoint's pending deliveries made by an admin (admin-deliveries.ts: a replay,
-- redelivery or test is refused past 20,000 of them) had no index but the lane index of every
-- pending delivery: with 500,000 routed deliveries waiting for a receiver that is down, each
-- replay took 300 ms in a scan of the table — and on the embedded database, whose one connection
-- the count's transaction holds, routing and delivery waited that long. A partial index holds
-- just the admin-made pending rows (routed ones never enter it).
--
-- A record's "this lease was my own last record" test used IS NOT DISTINCT FROM: a record without
-- a lease, on a row never recorded (last_lease NULL), passed it — moved nothing, logged nothing.
-- No claim hands out a NULL lease today; equality makes it impossible.

CREATE INDEX webhook_deliveries_admin_pending_idx ON webhook_deliveries (endpoint_id) WHERE state = 'pending' AND trigger <> 'initial';

-- As migration 0015's, but for the test of a record's own lease: equality, which no NULL passes.
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
    UPDATE webhook_deliveries d SET state = i.state, attempts = d.attempts + 1, first_attempt_at = coalesce(d.first_attempt_at, now()),
      next_attempt_at = coalesce(i.next_at, d.next_attempt_at), leased_until = NULL, last_lease = i.lease, last_status = i.status, last_error = i.error,
      finished_at = CASE WHEN i.state = 'pending' THEN NULL ELSE now() END
    FROM input i WHERE d.id = i.id AND d.leased_until = i.lease AND d.state = 'pending'
    -- The dead letter's attempt says so, but for a 410: what the receiver answered (gone).
    RETURNING i.n, i.id, i.state, i.next_at, i.status, i.error, CASE WHEN i.state = 'dead' AND i.outcome <> 'gone' THEN 'dead' ELSE i.outcome END AS outcome,
              i.duration_ms, i.excerpt,
              d.endpoint_id, d.event_id, d.event_type, d.attempts, CASE WHEN d.attempts > 1 THEN 'retry' ELSE d.trigger END AS trigger, d.lane),
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
  SELECT m.n, true, CASE WHEN m.state = 'pending' THEN NULL ELSE (
    SELECT d.id::text FROM webhook_deliveries d
     WHERE d.endpoint_id = m.endpoint_id AND d.lane = m.lane AND d.state = 'pending' AND d.id <> ALL(ids)
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
