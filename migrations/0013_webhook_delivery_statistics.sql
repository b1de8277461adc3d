-- A small sample for the statistics of webhook_deliveries: ANALYZE reads 300 rows per unit of the
-- largest statistics target among the columns it analyzes — 30,000 at the default of 100 — and
-- sorts every sampled value of every column, the ~400-byte bodies included.
--
-- The table is analyzed often: the inserters do it each time a fair part of it was added
-- (delivery-statistics.ts), so that the cached plans follow a growing backlog. What those plans
-- need is the table's size and the share of pending rows per endpoint, which 3,000 rows give as
-- well as 30,000. Measured on 40,000 deliveries: ANALYZE 220 ms before, 15–20 ms after; on the
-- benchmark's overload step it had taken a sixth of Postgres's time.
--
-- The body is never searched: not analyzed at all. A column added to this table later needs a
-- target of its own, set by the migration that adds it, or the sample grows back
-- (test/integration/delivery-plans.test.ts checks).
ALTER TABLE webhook_deliveries
  ALTER COLUMN id SET STATISTICS 10,
  ALTER COLUMN endpoint_id SET STATISTICS 10,
  ALTER COLUMN event_id SET STATISTICS 10,
  ALTER COLUMN event_type SET STATISTICS 10,
  ALTER COLUMN topic SET STATISTICS 10,
  ALTER COLUMN lane SET STATISTICS 10,
  ALTER COLUMN body SET STATISTICS 0,
  ALTER COLUMN trigger SET STATISTICS 10,
  ALTER COLUMN state SET STATISTICS 10,
  ALTER COLUMN attempts SET STATISTICS 10,
  ALTER COLUMN first_attempt_at SET STATISTICS 10,
  ALTER COLUMN next_attempt_at SET STATISTICS 10,
  ALTER COLUMN leased_until SET STATISTICS 10,
  ALTER COLUMN last_status SET STATISTICS 10,
  ALTER COLUMN last_error SET STATISTICS 10,
  ALTER COLUMN event_time SET STATISTICS 10,
  ALTER COLUMN created_at SET STATISTICS 10,
  ALTER COLUMN finished_at SET STATISTICS 10;
