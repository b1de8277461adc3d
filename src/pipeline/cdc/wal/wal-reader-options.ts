/**
 * The WAL reader's options (`wal-reader.ts`), and the bounds it reads with, checked at creation.
 *
 * Bounded by bytes as well as by count (every queue and payload is): a chunk by `maxChunkChanges`
 * and `maxChunkBytes`, the chunks in the handler by `maxPendingTransactions` and `maxPendingBytes`.
 * A count alone let a transaction of large rows (1,000 outbox rows of 4 MB) be held whole.
 */
import type { Logger } from '../../../logger.ts';
import type { TransactionChunk } from '../row-change.ts';
import type { ChunkSession } from './replication-session.ts';
import { assertPositiveInteger } from './replication-setup.ts';
import type { SourceConnections } from './source-connections.ts';

export interface WalReaderOptions {
  /** The database to read (one pool and the replication settings); its role needs REPLICATION (or superuser). Not disposed by the reader. */
  readonly connections: SourceConnections;
  /** 1–63 lower-case letters, digits and `_` (see `replication-names.ts` for how sources name it). */
  readonly slotName: string;
  /** A lower-case identifier. */
  readonly publicationName: string;
  /** Tables of a publication the reader creates (`name` or `schema.name`), read at each connect. @default all tables (a source always lists them: `publication.ts`) */
  readonly tables?: readonly string[] | (() => readonly string[]);
  /**
   * The publication is Tributary's own (its name derived, `replication-names.ts`), so one an
   * earlier version created without `publish_via_partition_root` gets it; someone else's
   * publication is left as it is (others may read it). @default false
   */
  readonly ownsPublication?: boolean;
  /** The database's base slot name (`replication-names.ts`): `inspect` also reads its other slots so named (`other-slots.ts`). @default none read */
  readonly slotFamily?: string;
  /**
   * The caller already had a position on this slot (e.g. it stored events from it): a missing
   * slot then means it was lost, and `onSlotCreated` says `recreated: true`.
   * @default false
   */
  readonly expectExistingSlot?: boolean;
  readonly logger: Logger;
  /**
   * Receives the chunks in commit order (see `maxPendingTransactions`). A transaction is confirmed
   * after the promise of its final chunk, and of every earlier transaction, resolves; a rejection
   * drops the connection and everything not confirmed is received again after the reconnect delay.
   * `session` tells when that happened (see {@link ChunkSession}): a handler routes nothing once
   * its session ended, so that the redelivery keeps each row's order.
   */
  readonly handle: (chunk: TransactionChunk, session: ChunkSession) => Promise<void>;
  /** Most changes in one chunk; a larger transaction arrives in several. @default 1000 */
  readonly maxChunkChanges?: number;
  /**
   * Most bytes of changes in one chunk, in their estimate (`sizeOf` in `pgoutput-decode.ts`: the
   * change as it came over the wire, about the text of its row images). A chunk is handed on before
   * the change that would take it past this or past `maxChunkChanges`; a single change larger than
   * this goes alone. @default 16777216 (16 MiB)
   */
  readonly maxChunkBytes?: number;
  /**
   * Committed transactions whose `handle` may still be running while later ones are handed over
   * (in order). Positions are confirmed in commit order, each once it and everything before it
   * are handled. 1 hands over one transaction at a time. @default 256
   */
  readonly maxPendingTransactions?: number;
  /**
   * Bytes (as `maxChunkBytes` counts them) of the chunks handed to `handle` whose promise has not
   * settled yet. Once they reach this, or `maxPendingTransactions` transactions are pending, the
   * reader reads nothing more until earlier ones are handled (back-pressure: nothing is dropped).
   * So a session holds at most about this plus two chunks (the last handed over, the one being
   * read). @default 67108864 (64 MiB)
   */
  readonly maxPendingBytes?: number;
  /** First reconnect delay, in ms; doubles per failed attempt. @default 100 */
  readonly reconnectInitialDelayMs?: number;
  /** Longest reconnect delay, in ms. @default 5000 */
  readonly reconnectMaxDelayMs?: number;
  /**
   * How often the reader reports its confirmed position and asks Postgres for a keepalive, in
   * ms; keeps the connection alive while `handle` is slow and lets idle WAL be confirmed. A
   * connection that brings nothing for `SILENT_STATUS_INTERVALS` (3) of these is dropped and
   * reopened. @default 10000
   */
  readonly statusIntervalMs?: number;
  /**
   * Called after the reader created the slot, before any chunk from it. `recreated: true` when
   * the slot existed before (lost, dropped, or `expectExistingSlot`): changes were missed, start
   * a new epoch. If it throws, the new slot is dropped again so the next attempt reports it again.
   */
  readonly onSlotCreated?: (info: { recreated: boolean }) => void | Promise<void>;
  /**
   * Called at a reconnect, before any chunk, when the slot's confirmed position is ahead of the
   * reader's own: another reader confirmed changes on it meanwhile, which this one never gets.
   * If it throws, the connect fails (and is retried: it is called again).
   */
  readonly onSlotTaken?: () => void | Promise<void>;
  /**
   * Called on every (re)connect once the publication and slot exist, before the stream opens, with
   * no `handle` running (an earlier session's have settled). A rejection fails the connect, which
   * is retried like any other.
   */
  readonly onReady?: () => Promise<void>;
}

/** `WalReaderOptions.maxChunkBytes`'s default: 16 MiB. */
export const DEFAULT_MAX_CHUNK_BYTES = 16 * 1024 * 1024;

/** The bounds a reader's sessions read with, defaults applied. */
export interface ReaderLimits {
  readonly maxChunkChanges: number;
  readonly maxChunkBytes: number;
  readonly maxPendingTransactions: number;
  readonly maxPendingBytes: number;
}

/** The options' bounds with their defaults; throws `MISCONFIGURED` naming the first that is not a positive integer. */
export function readerLimits(options: WalReaderOptions): ReaderLimits {
  const limits: ReaderLimits = {
    maxChunkChanges: options.maxChunkChanges ?? 1000,
    maxChunkBytes: options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES,
    maxPendingTransactions: options.maxPendingTransactions ?? 256,
    maxPendingBytes: options.maxPendingBytes ?? 64 * 1024 * 1024,
  };
  for (const name of Object.keys(limits) as (keyof ReaderLimits)[]) assertPositiveInteger(name, limits[name]);
  return limits;
}
