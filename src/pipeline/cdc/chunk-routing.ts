/**
 * What a source's reader does with each transaction it receives (`cdc-source.ts` runs the reader
 * and hands every chunk here): the changes become events by the mappings of every environment
 * reading the database (`binding-events.ts`), the inserts into the outboxes read in WAL mode join
 * them (`wal-outboxes.ts`), and the whole transaction is placed in the log in one step. Kept apart
 * from the reader's lifecycle (election, start and retry, status): this is the hot path, and the
 * ordering rules below are all it is about.
 * - Each entity's transactions are placed in commit order, as the router keeps them too.
 * - A TRUNCATE of mapped tables concerns all their rows: it runs as a barrier
 *   (`chunk-barrier.ts`) and ends their model streams' history (`model-truncates.ts`).
 * - Once a transaction fails, nothing later of the same replication session is routed: the
 *   session reconnects and receives them again, in order (the slot position is confirmed only
 *   after the events are in the log, `wal/wal-reader.ts`).
 * - The raw changes of mapped tables are kept aside, off this path (`raw-change-writer.ts`).
 */
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { createKeyedSerial } from '../coordination/keyed-serial.ts';
import type { RawEventInput } from '../events/envelope.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventRouter } from '../router/event-router.ts';
import { bindingEvents, entityKeysOf, mappedTables, type BindingEventsOptions } from './binding-events.ts';
import type { CdcBinding } from './cdc-binding.ts';
import type { CdcStore } from './cdc-store.ts';
import { createChunkBarrier } from './chunk-barrier.ts';
import { endTruncatedHistories, truncatedModels, type TruncatedModel } from './model-truncates.ts';
import type { RawChangeLog, RawChangeRow } from './raw-change-log.ts';
import { createRawChangeWriter } from './raw-change-writer.ts';
import type { TransactionChunk } from './row-change.ts';
import type { WalOutboxes } from './wal-outboxes.ts';
import type { ChunkSession } from './wal/wal-reader.ts';

export interface ChunkRouting {
  /** The reader's chunk handler (`WalReaderOptions.handle`): settles once the chunk's events are in the log. */
  readonly handle: (chunk: TransactionChunk, session: ChunkSession) => Promise<void>;
  /** The mappings applied now. */
  readonly bindings: readonly CdcBinding[];
  /** Replaces the mappings: they apply from the next transaction. */
  setBindings(bindings: readonly CdcBinding[]): void;
  /** The tables (`schema.table`) the mappings read. */
  mappedTables(): string[];
  /** Writes the raw changes still buffered, then stops writing them. Idempotent. */
  close(): Promise<void>;
}

export interface ChunkRoutingOptions {
  /** The source's id (`sourceIdOf`): in every event's id and every raw change. */
  readonly source: string;
  readonly bindings: readonly CdcBinding[];
  /** The source's WAL-mode outboxes; their owner sets and stops them. */
  readonly outboxes: Pick<WalOutboxes, 'catchingUp' | 'take'>;
  readonly router: EventRouter;
  readonly log: EventLog;
  /** Keeps the raw changes and the durable count of rows not routed in full. */
  readonly store: RawChangeLog & Pick<CdcStore, 'noteUnroutable'>;
  /** The source's logger. */
  readonly logger: Logger;
  /** Counts rows that matched a mapping but could not be routed in full (`binding-events.ts`). @default no metrics */
  readonly metrics?: Pick<Metrics, 'cdcUnroutable'>;
}

export function createChunkRouting(options: ChunkRoutingOptions): ChunkRouting {
  const { source, outboxes, router, store, logger } = options;
  let bindings = options.bindings;
  let rawTables = mappedTables(bindings);
  const rawChanges = createRawChangeWriter({ store, logger });
  const eventOptions: BindingEventsOptions = {
    logger,
    ...(options.metrics && { metrics: options.metrics }),
    onUnroutable: (error, scope) => store.noteUnroutable(source, { app: scope.app, env: scope.env, mapping: error.mapping, reason: error.reason }),
  };

  /**
   * Each entity's transactions in commit order, as the router keeps them too; here, so that the
   * session can be checked after the previous transaction of the same rows settled and right
   * before this one is placed.
   */
  const ordered = createKeyedSerial();
  const barrier = createChunkBarrier();
  const truncates = { source, log: options.log, router, logger };

  const handle = async (chunk: TransactionChunk, session: ChunkSession): Promise<void> => {
    try {
      // A TRUNCATE of mapped tables concerns all their rows: a barrier (`model-truncates.ts`).
      const truncated = chunk.truncate ? truncatedModels(bindings, chunk.truncate) : [];
      if (truncated.length === 0) await barrier.run(() => route(chunk, session));
      else await barrier.runAlone(() => routeTruncating(chunk, truncated, session));
    } catch (error) {
      // Failing the session at once (a rejection reaches it only later) stops every later transaction.
      session.fail(error);
      throw error;
    }
  };

  const routeTruncating = async (chunk: TransactionChunk, models: TruncatedModel[], session: ChunkSession): Promise<void> => {
    await route(chunk, session);
    if (session.signal.aborted) {
      throw new TributaryError(ErrorCode.UNAVAILABLE, 'TRUNCATE not applied: the replication session ended before it; it is received again');
    }
    await endTruncatedHistories(truncates, models, { truncate: chunk.truncate!, lastUpdatedAt: chunk.commitTime.toISOString() });
  };

  const route = async (chunk: TransactionChunk, session: ChunkSession): Promise<void> => {
    // An outbox being caught up from its table: its rows in this chunk come after the catch-up's.
    const catchingUp = outboxes.catchingUp;
    if (catchingUp) await catchingUp;
    const routed: RawEventInput[] = [];
    const raw: RawChangeRow[] = [];
    const lastUpdatedAt = chunk.commitTime.toISOString();
    const transaction = { source, xid: chunk.xid, commitLsn: chunk.commitLsn };
    for (const change of chunk.changes) {
      const table = `${change.table.schema}.${change.table.name}`;
      // Raw changes of mapped tables only (the publication may hold others), never of the
      // platform's own raw-change table: were the platform database read as a source, each batch
      // stored would be read and stored again, without end. Recognised by its name, in any schema.
      if (rawTables.has(table) && change.table.name !== RAW_CHANGE_TABLE) {
        raw.push({ source, commitLsn: chunk.commitLsn, xid: chunk.xid, change });
      }
      for (const binding of bindings) {
        if (binding.unread?.has(table)) {
          throw new TributaryError(ErrorCode.UNAVAILABLE, `the catalog entry of ${table} could not be read from the source yet: its changes wait until it is`);
        }
        routed.push(...bindingEvents(binding, { source, change, transaction, lastUpdatedAt }, eventOptions));
      }
    }
    const outboxPart = outboxes.take(chunk);
    routed.push(...outboxPart.events);
    await ordered.run(entityKeysOf(routed), async () => {
      // Right before placing: once an earlier transaction of this session failed, it is received
      // again after the reconnect, and this one after it; placed now, this one would come first.
      if (session.signal.aborted) {
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'not routed: the replication session ended before it; it is received again');
      }
      try {
        // The whole chunk in one step: one log append per stream, in commit order.
        await router.routeMany(routed);
      } catch (error) {
        // Before this slot ends: the next transaction of these rows must find the session failed.
        session.fail(error);
        throw error;
      }
    });
    outboxPart.routed();
    await rawChanges.add(raw);
  };

  return {
    handle,
    get bindings() {
      return bindings;
    },
    setBindings(next) {
      bindings = next;
      rawTables = mappedTables(next);
    },
    mappedTables: () => [...rawTables],
    close: () => rawChanges.close(),
  };
}

/** The platform's table of raw changes (`raw-change-log.ts`). */
const RAW_CHANGE_TABLE = 'cdc_events';
