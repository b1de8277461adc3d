-- An endpoint's backlog is bounded (WEBHOOK_MAX_PENDING, backlog-bound.ts): one that has more
-- deliveries pending than that — its receiver down or slower than what it is sent, or the endpoint
-- disabled while its events keep coming — is marked full here, and no process stores deliveries for
-- it while it is; the mark goes once its backlog is worked off below nine tenths of the bound. Since
-- when tells an admin where a replay from the event log starts to catch up.
ALTER TABLE webhook_endpoints ADD COLUMN backlog_full_since timestamptz;
