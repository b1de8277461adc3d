/**
 * The event contract every source produces and every subscriber receives (seed 000, "Event
 * Envelope Reference", extended for a lossless stream: scope, entity and cursor).
 *
 * Terminology:
 * - topic: a named stream inside a scope (`sync.orders.updated`, `session.status`).
 * - stream: one topic in one scope; it has a log, an epoch and a live channel.
 * - cursor: an opaque position in a stream's log; a subscriber resumes after it.
 * - epoch: the identity of a stream's log; it changes when the history is lost (Redis lost its
 *   data, a replication slot was recreated), which turns every older cursor into RESYNC_REQUIRED.
 * - entity: the key per-entity ordering is kept for (row primary key, document id).
 */
import type { Scope } from '../scope.ts';

export type EventSource = 'database' | 'sync' | 'socket' | 'system';

export type EventOperation = 'insert' | 'update' | 'delete';

export interface EventMetadata {
  /** When the router accepted the event, in ms since the epoch. */
  readonly timestamp: number;
  /** Database events only. */
  readonly table?: string;
  readonly operation?: EventOperation;
  /** Sync events only: the document revision after the change. */
  readonly revision?: number;
  /** From the writer's token or the mapping, never from a subscriber. */
  readonly scope: Scope;
  readonly entity?: string;
  /** Database events read from the WAL: the transaction that made them (see `WalTransaction`). */
  readonly transaction?: WalTransaction;
}

/**
 * The source transaction of a WAL event, in the terms a REPEATABLE READ snapshot of the same
 * database can be compared with (`cdc/wal/snapshot-window.ts`): a model snapshot (`records`) uses
 * it to recognise the changes it already reflects.
 */
export interface WalTransaction {
  /** The source database's id (a hash of its identity): xids compare only within one database cluster. */
  readonly source: string;
  /** The top-level transaction id (32 bits, as pgoutput sends it). */
  readonly xid: number;
  /** The LSN of the commit record, `XXXXXXXX/XXXXXXXX`. */
  readonly commitLsn: string;
}

export interface RealtimeEvent {
  /** `evt_…`; deterministic when the source gives one (CDC), so a redelivery keeps its id. */
  readonly id: string;
  readonly topic: string;
  readonly source: EventSource;
  /** e.g. `database.update`, `sync.updated`, `message`. */
  readonly type: string;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly metadata: EventMetadata;
  /** Where this event sits in its stream's log; the resume point after it. */
  readonly cursor: string;
}

/** What a source hands the router (seed 000's RawEventInput, plus scope and entity). */
export interface RawEventInput {
  readonly topic: string;
  readonly source: EventSource;
  readonly type: string;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly scope: Scope;
  readonly entity?: string;
  /** A stable id from the source (CDC: slot + LSN + index); generated when absent. */
  readonly id?: string;
  readonly table?: string;
  readonly operation?: EventOperation;
  readonly revision?: number;
  readonly transaction?: WalTransaction;
}

/** An event before the log has placed it: everything but the cursor. */
export type UnplacedEvent = Omit<RealtimeEvent, 'cursor'>;

/**
 * Whether a value read back (a Redis frame or log entry: written by another version of
 * Tributary, or by a foreign publisher) has the fields every reader relies on — `id`, `topic`,
 * `source`, `type`, a `payload`, and `metadata` with its `timestamp` and `scope` — so a frame of
 * another shape is dropped where it is read, not cast into an event that fails far from there.
 * Checks the shape only, not the values (an unknown `source` passes).
 */
export function isUnplacedEvent(value: unknown): value is UnplacedEvent {
  return hasEventFields(value) && 'payload' in value;
}

/** `isUnplacedEvent` but for the payload: what a stored reference to an event (an idempotency key's record) keeps. */
export function hasEventFields(value: unknown): value is Omit<UnplacedEvent, 'payload'> {
  if (!isRecord(value) || !isRecord(value['metadata'])) return false;
  const { metadata } = value;
  return (
    typeof value['id'] === 'string' &&
    typeof value['topic'] === 'string' &&
    typeof value['source'] === 'string' &&
    typeof value['type'] === 'string' &&
    typeof metadata['timestamp'] === 'number' &&
    isScope(metadata['scope'])
  );
}

function isScope(value: unknown): value is Scope {
  return isRecord(value) && typeof value['app'] === 'string' && typeof value['env'] === 'string' && (value['tenant'] === undefined || typeof value['tenant'] === 'string');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
