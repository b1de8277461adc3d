-- Replication slots no environment reads any more, to drop on their source database.
--
-- They were noted in the memory of the instance that led the slot's reader only: a slot was left
-- on the source database for good — pinning its WAL, with no reader left to raise
-- cdc.retained_wal — when that instance stopped before the drop succeeded, or when no instance
-- led the reader as the change was loaded. A note is written in the statement that saves the
-- configuration retiring the slot (a source removed, or set on other names), and when a reload
-- stops a reader whose slot its configuration no longer names (an outbox removed, a URL that now
-- reaches another database); it is deleted once the slot is dropped, or claimed again.
--
-- `database` is the database's identity key (replication-names.ts), checked before the drop: NULL
-- when the saving instance did not know it, taken from the first instance that reaches the URL.
-- `slot_name` NULL is the name derived from that identity.
CREATE TABLE cdc_retired_slots (
  id            bigserial    PRIMARY KEY,
  database      text,
  database_url  text         NOT NULL,
  slot_name     text,
  retired_at    timestamptz  NOT NULL DEFAULT now()
);
