-- An entity's lane gets one head, whoever stores its deliveries at the same moment.
--
-- Two faults of the follower trigger (migration 0024) when two transactions store deliveries in
-- one lane at once — two instances routing one entity's events, a replay beside a routing:
--
-- 1. Both heads. Each insert looks for a pending delivery in its lane and sees only what has
--    committed: into an empty lane, both inserts found none, both stored theirs due at once, and
--    the two went out together — an entity's order broken. A routed (initial) delivery into an
--    entity's lane now first takes a transaction lock of its endpoint's lane inserts: a second
--    routing of that endpoint waits until the first has committed, then sees its delivery and
--    waits behind it. The lock is the endpoint's, not the lane's: a routing statement locks at most
--    one per endpoint (a lane's would be up to a statement's 1,000 rows, from a lock table sized
--    64 a connection), and it is taken at the endpoint's first entity-lane row, before any head
--    of that endpoint is share-locked: with the rows stored in endpoint order (the insert below),
--    every routing takes its locks in one order, and none waits for another while holding what
--    that one needs. Routings of other endpoints, and events without an entity (their own lanes,
--    no trigger), take nothing. Replays, redeliveries and tests take no such lock: their
--    statements run in one transaction of many pages (admin-deliveries.ts), which would hold live
--    routing of the endpoint for all of it; one stored at the very moment a routing is may still
--    go out beside it (README, order and fairness).
-- 2. Two firsts. A delivery's id (its place in the lane) was drawn before the trigger ran: an
--    insert that drew its id, then found a head another transaction had committed meanwhile,
--    stored its delivery waiting ('infinity') yet first in the lane by id. Its insert still named
--    it a head, so it went out beside the head it should have waited for; had that scheduling been
--    lost (Redis away, a crash), the reconciler's look for due heads, which skips 'infinity',
--    found neither, and the lane stuck. The id is now drawn after the look: a follower's id is
--    always larger than its head's, and the insert names no waiting delivery a head.

CREATE OR REPLACE FUNCTION tributary_webhook_follower_waits() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
  head bigint;
  head_state text;
BEGIN
  IF NEW.trigger = 'initial' THEN
    -- Held until this transaction ends; taken again by the endpoint's next row at no cost. A 64-bit
    -- key: two endpoints sharing one would take it out of endpoint order (a deadlock, detected).
    PERFORM pg_advisory_xact_lock(hashtextextended('tributary.webhook.lane-inserts ' || NEW.endpoint_id, 0));
  END IF;
  LOOP
    SELECT e.id INTO head FROM webhook_deliveries e
     WHERE e.endpoint_id = NEW.endpoint_id AND e.lane >= NEW.lane AND e.lane <= NEW.lane AND e.state = 'pending'
     ORDER BY e.lane, e.id LIMIT 1;
    IF head IS NULL THEN
      EXIT;
    END IF;
    -- Locked by id (the primary key: no state here for a partial index to answer): a finish under
    -- way is waited for, and the lock reads the row as it committed. Finished meanwhile: the lane
    -- is looked at again (each statement here reads what has committed by its start).
    head_state := NULL;
    SELECT h.state INTO head_state FROM webhook_deliveries h WHERE h.id = head FOR SHARE;
    IF head_state = 'pending' THEN
      NEW.next_attempt_at := 'infinity';
      EXIT;
    END IF;
  END LOOP;
  -- Drawn after the look (2. above): later than every id the look saw.
  NEW.id := nextval('webhook_deliveries_id_seq'::regclass);
  RETURN NEW;
END
$$;

-- As migration 0039's, but the rows are stored in endpoint order (1. above: the order the
-- trigger's locks are taken in; within an endpoint, and so within a lane, the order given), and a
-- delivery the trigger stored waiting is no head: its lane's head committed while this insert
-- waited for the lock, after the statement's snapshot, which the probes below read.
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
     ORDER BY t.endpoint_id, t.n
    ON CONFLICT (endpoint_id, event_id) WHERE trigger = 'initial' DO NOTHING
    RETURNING w.id, w.endpoint_id, w.event_id, w.lane, w.leased_until, w.next_attempt_at, w.created_at, w.trigger = 'initial' AND w.lane = 'event:' || w.event_id AS own_initial)
  SELECT i.id::text, i.endpoint_id, i.event_id, i.leased_until IS NOT NULL, i.next_attempt_at, i.created_at,
         i.next_attempt_at < 'infinity'
         AND CASE WHEN i.own_initial
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

-- Lanes already stuck by 2. above: their first pending delivery waits at 'infinity' with no head
-- before it. Made due now; it goes first, the lane's others after it, as any lane's.
UPDATE webhook_deliveries d SET next_attempt_at = now()
 WHERE d.state = 'pending' AND d.next_attempt_at = 'infinity'
   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                    WHERE e.endpoint_id = d.endpoint_id AND e.lane = d.lane AND e.state = 'pending' AND e.id < d.id);
