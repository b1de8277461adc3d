-- What the webhook alerts read every evaluation (ALERTS_EVALUATE_SECONDS, 5 s), kept small.
--
-- `webhook.failure_rate` counted the attempt log over its window (ALERTS_WINDOW_SECONDS, 300 s):
-- at 1,000 attempts a second, 300,000 rows every 5 s — measured at 120–130 ms, with two parallel
-- workers beside the backend. Every worker process now counts its attempts per endpoint as they end
-- and adds them here every few seconds (attempt-tallies.ts): one row per endpoint and 10-second span,
-- whichever processes counted it, so the rule reads a few rows per endpoint for its window.
CREATE TABLE webhook_attempt_tallies (
  -- No foreign key: a process may still add to an endpoint deleted meanwhile; the rule joins the
  -- endpoints, and old spans are deleted by age.
  endpoint_id text        NOT NULL,
  -- The start of the 10-second span the attempts were added in (a multiple of 10 s since the epoch).
  span_start  timestamptz NOT NULL,
  attempts    integer     NOT NULL,
  -- Every outcome but `delivered`.
  failures    integer     NOT NULL,
  -- The rule reads the spans of its window, and old spans are deleted by age: span first.
  PRIMARY KEY (span_start, endpoint_id)
);

-- `webhook.dead_letters` counts the deliveries dead-lettered in the window: through the index of all
-- finished deliveries (every one finished in the window, to find the few dead), or — when most of the
-- table is in the window — a scan of the whole table: 150 ms at 300,000 deliveries. Dead letters are
-- few; an index of their own holds only them.
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (finished_at) WHERE state = 'dead';
