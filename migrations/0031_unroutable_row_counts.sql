-- Rows a reader could never route, counted per minute, for the alert rules `outbox.dead_rows` and
-- `cdc.unroutable_rows` (MISSION #10: failures become alerts, never silence).
--
-- An outbox's dead rows live in the application's database, where its retention sweep deletes
-- them (8 dead rows read 0 once swept): counting them there would resolve an alert when the sweep
-- ran, not when rows stopped dying. A CDC row change that cannot be routed leaves no row at all.
-- So the readers add what they set aside here, in the platform database every instance reads.
--
-- One row per subject, minute and reason: a burst of dead rows is one upsert, and a window sums a
-- few rows. Rows older than a day and an hour (the longest ALERTS_WINDOW_SECONDS, and a margin)
-- are deleted by the writer of the same subject; those of a subject no longer written stay until
-- it writes again (a handful of rows).

-- `outbox_id`: the outbox's id in `outbox_sources` — an outbox pointed at another table gets a new
-- id, and the rows counted for the old table no longer count.
CREATE TABLE outbox_dead_counts (
  outbox_id  text         NOT NULL,
  minute     timestamptz  NOT NULL,
  reason     text         NOT NULL,
  row_count  bigint       NOT NULL,
  PRIMARY KEY (outbox_id, minute, reason)
);
CREATE INDEX outbox_dead_counts_minute_idx ON outbox_dead_counts (minute);

-- `source`: the CDC source as `cdc_reader_status` names it; `app`, `env`: the environment whose
-- mapping `mapping` matched the row. A source is one database that several environments may read,
-- each with mappings of its own (names may repeat across them): the counts are that environment's
-- alone, raised in it and naming its mapping, never in every environment reading the source.
CREATE TABLE cdc_unroutable_counts (
  source     text         NOT NULL,
  minute     timestamptz  NOT NULL,
  app        text         NOT NULL,
  env        text         NOT NULL,
  mapping    text         NOT NULL,
  reason     text         NOT NULL,
  row_count  bigint       NOT NULL,
  PRIMARY KEY (source, minute, app, env, mapping, reason)
);
CREATE INDEX cdc_unroutable_counts_minute_idx ON cdc_unroutable_counts (minute);
