-- An attempt cut by its process's shutdown (webhook-deliverer.ts: no answer came before the
-- workers' wait ran out) is recorded as `cut`, and is not one of the delivery's attempts.
--
-- It was recorded as `failed` and counted like any attempt: the attempt log read `failed` for what
-- the receiver never failed, and `attempts` went one up, so the delivery's retries after it came a
-- step further along the retry curve (`nextAttemptAt` takes the attempts made) and the attempt log
-- numbered them one further than the attempts the receiver had. Now, for outcome `cut`:
-- - the attempt log has it as `cut`, numbered as the attempt it would have been (with that
--   attempt's trigger); the next counted attempt is logged with the same number again;
-- - `attempts`, `first_attempt_at`, `last_status` and `last_error` are left as they were: they
--   stand for the attempts the receiver answered or failed. The retry window runs from the first
--   of those — a delivery whose first attempt was cut has not begun its window, and reading
--   `attempts: 0` beside a `first_attempt_at` would make no sense either;
-- - the rest is migration 0016's, unchanged: due at the time given (at once), the lease released,
--   last_lease kept (a retried record of a cut is still logged once), a late holder's cut logged
--   as the attempt the delivery was at, moving nothing.
--
-- A process of the previous version still records its cuts as `failed` (counted, as before) until
-- it stops; only this version's processes send `cut`.

-- As migration 0016's, but for an attempt whose outcome is `cut`.
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
    FROM input i WHERE d.id = i.id AND d.leased_until = i.lease AND d.state = 'pending'
    -- The dead letter's attempt says so, but for a 410: what the receiver answered (gone).
    RETURNING i.n, i.id, i.state, i.next_at, i.status, i.error, CASE WHEN i.state = 'dead' AND i.outcome <> 'gone' THEN 'dead' ELSE i.outcome END AS outcome,
              i.duration_ms, i.excerpt,
              -- d is the row as updated: a cut, not counted, is logged as the attempt it would have
              -- been — the number (and trigger) the next counted attempt is logged with again.
              d.endpoint_id, d.event_id, d.event_type, d.attempts + CASE WHEN i.outcome = 'cut' THEN 1 ELSE 0 END AS attempts,
              CASE WHEN d.attempts > CASE WHEN i.outcome = 'cut' THEN 0 ELSE 1 END THEN 'retry' ELSE d.trigger END AS trigger, d.lane),
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
