-- tributary:no-transaction
-- Hour and day rows are pruned past their retention (ANALYTICS_HOUR_RETENTION_DAYS,
-- ANALYTICS_DAY_RETENTION_DAYS; src/pipeline/analytics/stats-store.ts `pruneWindows`), a batch per
-- flush, by start time across every environment, as topic_stats_minute_age_idx serves the minutes.
-- Without these each flush would read the whole of both tables (the day table has its primary key
-- only; 0032's hour index leads with app and env).
--
-- Built concurrently (outside a transaction; rules in src/db/migrations.ts), as 0032: the tables
-- hold the whole history, and a plain CREATE INDEX would hold off every flush while it builds. The
-- drops first remove an INVALID index a failed build may have left. Two indexes in one file, against
-- the rule of one per file, so that they take one migration number: every statement can run again,
-- and the small day table's comes first — a failure on the hours rebuilds only the days' index.
DROP INDEX CONCURRENTLY IF EXISTS topic_stats_day_age_idx;
CREATE INDEX CONCURRENTLY topic_stats_day_age_idx ON topic_stats_day (start_time);
DROP INDEX CONCURRENTLY IF EXISTS topic_stats_hour_age_idx;
CREATE INDEX CONCURRENTLY topic_stats_hour_age_idx ON topic_stats_hour (start_time);
