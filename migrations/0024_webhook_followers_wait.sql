-- A lane's followers are not due until they become its head.
--
-- An entity's later deliveries were stored due at once (next_attempt_at = when stored) while they
-- wait for their lane's head. With the head waiting out a retry, every look for due deliveries
-- (tributary_webhook_claim_due, the reconciler's dueHeads) read them all, in due order, and found
-- each one not a head: 100 lanes of 1,000 deliveries behind retrying heads cost ~600 ms a look
-- instead of ~1.
--
-- A follower is now stored due at 'infinity' — still in the due index (its predicate holds), but
-- past every bound a look puts on it (next_attempt_at <= now()), so a look reads the heads only —
-- and made due when it becomes its lane's head. Both happen in the database, by triggers, so that
-- every process stores and finishes deliveries alike whichever version it runs (during a rolling
-- upgrade, processes of the earlier version insert and record with the functions of migrations
-- 0019 and 0016 — unchanged here):
--   * stored: a delivery is a follower when its lane has a pending delivery already (one stored
--     before it, in this statement or committed earlier). That delivery — the lane's head — is
--     share-locked until the insert commits: a finish of it (a record's update) waits for the
--     insert, and then sees the follower to make due. One that committed first is seen by the
--     insert (its lock waits for it, then reads the lane's next pending delivery instead);
--   * finished (delivered or dead, by any statement): the lane's new head, if it waits at
--     'infinity', is made due now.
-- Nothing else makes a delivery its lane's head: deliveries are deleted only finished (pruning)
-- or with their endpoint (all its lanes at once); a head is never put back behind a follower.
--
-- An event's own lane (`event:…`, endpoint-selection.ts) holds that event's deliveries only — a
-- redelivery is the most that precedes a new one — so neither trigger runs for it: the deliveries
-- of events without an entity, most of them, cost what they did.
--
-- Followers stored before this migration keep their due time; they are read by the looks, as
-- before, until their lanes are worked off.

-- The lane's head is read in the lane index's order, lane and id (`lane` bounded as a range, not
-- compared for equality, which would leave the order to be id alone): no other index has that
-- order, and sorting is priced out, so the plan — made once per connection, maybe on an empty
-- table — is one probe of the lane index, never a walk of the lane (an aggregate over its every
-- pending delivery) nor of the primary key.
CREATE FUNCTION tributary_webhook_follower_waits() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
  head bigint;
  head_state text;
BEGIN
  LOOP
    SELECT e.id INTO head FROM webhook_deliveries e
     WHERE e.endpoint_id = NEW.endpoint_id AND e.lane >= NEW.lane AND e.lane <= NEW.lane AND e.state = 'pending'
     ORDER BY e.lane, e.id LIMIT 1;
    IF head IS NULL THEN
      RETURN NEW;
    END IF;
    -- Locked by id (the primary key: no state here for a partial index to answer): a finish under
    -- way is waited for, and the lock reads the row as it committed. Finished meanwhile: the lane
    -- is looked at again (each statement here reads what has committed by its start).
    head_state := NULL;
    SELECT h.state INTO head_state FROM webhook_deliveries h WHERE h.id = head FOR SHARE;
    IF head_state = 'pending' THEN
      NEW.next_attempt_at := 'infinity';
      RETURN NEW;
    END IF;
  END LOOP;
END
$$;

CREATE TRIGGER webhook_deliveries_follower_waits BEFORE INSERT ON webhook_deliveries
  FOR EACH ROW WHEN (NEW.state = 'pending' AND NOT starts_with(NEW.lane, 'event:'))
  EXECUTE FUNCTION tributary_webhook_follower_waits();

CREATE FUNCTION tributary_webhook_lane_moved_on() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
  -- An AFTER trigger sees its statement's every change: the head after all it finished.
  UPDATE webhook_deliveries d SET next_attempt_at = now()
   WHERE d.id = (SELECT e.id FROM webhook_deliveries e
                  WHERE e.endpoint_id = NEW.endpoint_id AND e.lane >= NEW.lane AND e.lane <= NEW.lane AND e.state = 'pending'
                  ORDER BY e.lane, e.id LIMIT 1)
     AND d.next_attempt_at = 'infinity';
  RETURN NULL;
END
$$;

CREATE TRIGGER webhook_deliveries_lane_moved_on AFTER UPDATE OF state ON webhook_deliveries
  FOR EACH ROW WHEN (OLD.state = 'pending' AND NEW.state <> 'pending' AND NOT starts_with(NEW.lane, 'event:'))
  EXECUTE FUNCTION tributary_webhook_lane_moved_on();
