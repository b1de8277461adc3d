-- The version the endpoint caches reload by (endpoint-cache.ts): a counter each change to an
-- endpoint raises in its own transaction.
--
-- It was count(*) and max(updated_at). A new endpoint's updated_at is its transaction's start
-- (DEFAULT now()), which can be older than another admin's change committed meanwhile and already
-- reloaded by every instance; with an endpoint deleted before the next reload, count and max came
-- back as they were, and no instance loaded the new endpoint, nor dropped the deleted one, until
-- some later change. A sequence would not do either: nextval is not transactional, so a reader
-- could see a number whose change has not committed yet, reload without it and keep that number.
-- The counter's row is updated in the change's transaction and locked until it ends: changes take
-- their turns at it, each raising what the one before committed, and a reader sees a new value only
-- together with the change that made it.
CREATE TABLE webhook_endpoints_version (
  one      boolean PRIMARY KEY DEFAULT true CHECK (one),
  version  bigint  NOT NULL
);
INSERT INTO webhook_endpoints_version (version) VALUES (1);

CREATE FUNCTION tributary_webhook_endpoints_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE webhook_endpoints_version SET version = version + 1;
  RETURN NULL;
END
$$;

-- Every change the caches must see sets updated_at (endpoint-store.ts), and only those do: an
-- attempt's outcome (failing_since, last_success_at, per attempt) and forgetting an expired secret
-- leave it, and the caches, alone. A row trigger, so that a statement that changes nothing (an
-- enable of an endpoint enabled already) raises nothing either.
CREATE TRIGGER webhook_endpoints_added_or_deleted AFTER INSERT OR DELETE ON webhook_endpoints
  FOR EACH ROW EXECUTE FUNCTION tributary_webhook_endpoints_changed();
CREATE TRIGGER webhook_endpoints_updated AFTER UPDATE ON webhook_endpoints
  FOR EACH ROW WHEN (OLD.updated_at IS DISTINCT FROM NEW.updated_at) EXECUTE FUNCTION tributary_webhook_endpoints_changed();
