-- Since when a source's reader has not streamed, for the alert rule `cdc.reader_down`: NULL while
-- its leader reports it streaming; otherwise the last report that said streaming (or, if none did,
-- the first report). A leader that cannot reach its source reports `failed` or `reconnecting`
-- every few seconds, so `updated_at` stays fresh while nobody reads the source: it cannot say how
-- long that has lasted.
ALTER TABLE cdc_reader_status ADD COLUMN not_streaming_since timestamptz;
UPDATE cdc_reader_status SET not_streaming_since = updated_at WHERE state <> 'streaming';
