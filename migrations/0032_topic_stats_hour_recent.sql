-- tributary:no-transaction
-- Hot topics over an hour read the environment's hour rows of the window (analytics-reader.ts,
-- hot-topics-window.ts) instead of its sixty minute rows per topic. The primary key leads with
-- (app, env, topic, …): with no topic given it would walk every hour the environment ever had —
-- hours are kept forever. This index finds an environment's hours by start time, as
-- topic_stats_minute_recent_idx does for its minutes.
--
-- Built concurrently (outside a transaction; rules in src/db/migrations.ts): topic_stats_hour
-- grows with the history, and a plain CREATE INDEX would hold off every flush while it builds.
-- The drop first removes an INVALID index a failed build may have left.
DROP INDEX CONCURRENTLY IF EXISTS topic_stats_hour_recent_idx;
CREATE INDEX CONCURRENTLY topic_stats_hour_recent_idx ON topic_stats_hour (app, env, start_time);
