/**
 * The outboxes read from one source database's WAL (the outbox's WAL mode): the changes of each
 * outbox table arrive with the CDC source's other changes, on the same slot, in commit order, and
 * its rows are routed in the same `routeMany` as a chunk's CDC events, so the slot position is
 * confirmed only after they are in the log — CDC's at-least-once rule. No polling.
 *
 * - **As committed.** A row is routed as its transaction committed it: an UPDATE or DELETE later in
 *   the transaction that inserted it is folded onto it, and its rows are routed with the
 *   transaction's final chunk (`wal-outbox-rows.ts`, which bounds what is held). A change of a row
 *   of an earlier transaction, already routed, changes nothing.
 *
 * - **Catch-up.** The WAL holds only what was committed after the slot's position, and an outbox
 *   joins a running reader at some point of its stream; rows committed before are in the table
 *   only. So before an outbox's rows are taken from the WAL — when the reader (re)connects, or an
 *   outbox is added to a running one — its pending rows are routed from the table in id order, in
 *   one REPEATABLE READ transaction, and deleted. The WAL then still delivers some of those rows
 *   again: those whose transaction the catch-up's snapshot saw. They are recognised by the chunk's
 *   xid against that snapshot (until the stream passes the WAL position read after it) and
 *   skipped, so the catch-up routes nothing twice and an entity's rows keep their order.
 * - **Clean-up.** A row routed from the WAL is deleted from the table in batches shortly after
 *   (its insert stays in the WAL until the slot is confirmed; a row routed but not yet deleted
 *   when the process dies is routed again, with its id, at the next catch-up). Poison rows are
 *   marked dead in place, like the poller does, and the retention sweep removes them later.
 * - **Connections.** Every statement on an outbox's table runs on the connections of the outbox's
 *   own URL (`WalOutboxBinding.connections`), never on the reader's: an unqualified table name is
 *   resolved by the connecting login's search path, and two apps sharing a database under their
 *   own logins each have an `event_outbox` of their own. The reader's connections only add the
 *   table to the slot's publication.
 * - Rows become events exactly as the poller makes them (`outbox/outbox-row.ts`): same ids, scope,
 *   entity, dead reasons.
 */
import { componentLogger, type Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { RawEventInput } from '../events/envelope.ts';
import type { EventRouter } from '../router/event-router.ts';
import { outboxRowOutcome, type OutboxRow } from '../outbox/outbox-row.ts';
import type { DeadRowTally } from '../outbox/outbox-store.ts';
import { describeOutboxError } from '../outbox/outbox-errors.ts';
import { OUTBOX_CONNECTION_LIMITS } from '../outbox/outbox-pool.ts';
import { deleteProcessed, markDead, outboxCounts, resolveTable, type OutboxCounts } from '../outbox/outbox-sql.ts';
import { beginCatchUp, deleteRows, limitWaits, pendingAfter } from '../outbox/outbox-wal-sql.ts';
import type { TransactionChunk } from './row-change.ts';
import { HELD_BYTES_LIMIT, HELD_ROWS_LIMIT, outboxRowOf } from './wal-outbox-rows.ts';
import { WalOutbox, type WalOutboxBinding } from './wal-outbox.ts';
import type { DeadRow } from './wal-outbox-cleanup.ts';
import { snapshotWindow } from './wal/snapshot-window.ts';
import { ensurePublicationIncludes } from './wal/replication-setup.ts';
import type { SourceConnections } from './wal/source-connections.ts';

export type { WalOutboxBinding } from './wal-outbox.ts';

/** What an outbox's reader last measured, for `outboxStatus` and `/metrics`. */
export interface WalOutboxFigures extends Partial<OutboxCounts> {
  readonly binding: WalOutboxBinding;
  /**
   * Rows set aside as dead and not yet in the durable counts of `outbox.dead_rows`, by reason: the
   * reporter writes them (`writeDeadRowTally`) and only then are they subtracted, so figures
   * dropped or a write that fails lose none.
   */
  readonly deadRows: Pick<DeadRowTally, 'unwritten' | 'written'>;
  /** Rows routed since the previous `inspect()`. */
  readonly routed: number;
  readonly lastError: string | null;
}

/** An outbox read in WAL mode, and the database it is in (its table statements' connections are made here). */
export interface WalOutboxSource extends Omit<WalOutboxBinding, 'connections'> {
  readonly databaseUrl: string;
}

/** Where the WAL-mode outboxes are listed and their figures kept (the platform database's outbox sources). */
export interface WalOutboxCatalog {
  list(): Promise<readonly WalOutboxSource[]>;
  /** What the reader measured; `seconds` is the period its `routed` count covers. */
  report(figures: WalOutboxFigures, seconds: number): Promise<void>;
  /** Dead rows are deleted this long after they were set aside, in ms. */
  readonly retentionMs: number;
}

export interface WalOutboxes {
  /** Replaces the outboxes read; one that is new is caught up before its rows are taken from the WAL. */
  set(bindings: readonly WalOutboxBinding[]): void;
  /** The reader's `onReady`: cleans up what was routed, then catches every outbox up. */
  onReady(): Promise<void>;
  /** The reader stopped: every outbox is caught up again when one is ready. */
  suspend(): Promise<void>;
  /** Set while a catch-up runs: a chunk waits for it before `take`, so its rows follow the catch-up's. */
  readonly catchingUp: Promise<void> | undefined;
  /** The outbox events of a chunk (synchronous, in order; held to the final one), and what to note once routed. */
  take(chunk: TransactionChunk): { readonly events: readonly RawEventInput[]; routed(): void };
  /** Measures every outbox, sweeps retention, retries a failed catch-up (the leader's housekeeping). */
  inspect(): Promise<WalOutboxFigures[]>;
  /** The figures last measured, with `reason` as every outbox's error: the reader cannot start. */
  failed(reason: string): WalOutboxFigures[];
  /** Cleans up what was routed and stops the clean-up timer. */
  stop(): Promise<void>;
}

export interface WalOutboxesOptions {
  /** The reader's connections: the publication is altered on them (their login owns it), nothing else. */
  readonly connections: SourceConnections;
  /** The source's publication: an outbox table it does not publish yet is added to it. */
  readonly publicationName: string;
  readonly router: EventRouter;
  readonly logger: Logger;
  /** Dead rows are deleted this long after they were set aside, in ms. */
  readonly retentionMs: number;
  readonly metrics?: Pick<Metrics, 'outboxRouted' | 'outboxDead'>;
}

const CATCH_UP_PAGE = 1_000;
const CLEAN_UP_EVERY_MS = 1_000;
const CLEAN_UP_BATCH = 1_000;
const RETENTION_SWEEP_EVERY_MS = 30_000;

export function createWalOutboxes(options: WalOutboxesOptions): WalOutboxes {
  const { connections, router } = options;
  const logger = componentLogger(options.logger, 'outbox', { mode: 'WAL' });
  let outboxes = new Map<string, WalOutbox>();
  let ready = false;
  let catchingUp: Promise<void> | undefined;
  let cleaning: Promise<void> = Promise.resolve();
  // Clean-up failures, kept until that clean-up succeeds: the counts after them may work (DELETE
  // revoked leaves SELECT) and must neither clear them nor, at the next sweep's failure, blame reading.
  const cleanUpErrors = new WeakMap<WalOutbox, { routed?: string; retention?: string }>();
  const cleanUpError = (outbox: WalOutbox, kind: 'routed' | 'retention', message: string | undefined) => {
    const errors = { ...cleanUpErrors.get(outbox), [kind]: message };
    if (message === undefined) delete errors[kind];
    cleanUpErrors.set(outbox, errors);
  };
  const lastErrorOf = (outbox: WalOutbox): string | null => {
    const errors = cleanUpErrors.get(outbox);
    return outbox.lastError ?? errors?.routed ?? errors?.retention ?? null;
  };

  /** Runs `work` after any catch-up in progress; chunks wait for the chain while it is set. */
  const gate = (work: () => Promise<void>): Promise<void> => {
    const run = (catchingUp ?? Promise.resolve()).then(work);
    const settled = run.catch(() => undefined);
    catchingUp = settled;
    void settled.then(() => {
      if (catchingUp === settled) catchingUp = undefined;
    });
    return run;
  };

  const catchUp = async (outbox: WalOutbox): Promise<void> => {
    if (outboxes.get(outbox.binding.outboxId) !== outbox) return;
    outbox.active = false;
    // Rows held of a transaction being read: its snapshot sees that transaction (committed before
    // it was decoded), so the catch-up routes them from the table and its later chunks are skipped.
    outbox.transactionRows.reset();
    try {
      await cleanUp(outbox);
      await outbox.binding.connections.withClient(async (client) => {
        const resolved = await resolveTable(client, outbox.table);
        if (!resolved) throw new Error(`the table ${outbox.table.name} does not exist`);
        if ((await connections.withClient((reader) => ensurePublicationIncludes(reader, options.publicationName, resolved))).added) {
          logger.info({ outbox: outbox.name, publication: options.publicationName }, 'outbox table added to the publication');
        }
        // Bounded waits: a row another session holds fails the catch-up (retried at the next
        // inspection) instead of holding every chunk of the database behind it while it lasts.
        const { snapshot, lsn } = await beginCatchUp(client, OUTBOX_CONNECTION_LIMITS);
        let total = 0;
        try {
          for (let after = '0'; ; ) {
            const rows = await pendingAfter(client, outbox.table, after, CATCH_UP_PAGE, outbox.binding.maxPayloadBytes);
            if (rows.length === 0) break;
            after = rows.at(-1)!.id;
            const { events, routedIds, dead } = eventsOf(outbox, rows);
            if (events.length > 0) await router.routeMany(events);
            await deleteRows(client, outbox.table, routedIds);
            for (const { id, reason } of dead) await markDead(client, outbox.table, id, reason);
            count(outbox, routedIds.length, dead);
            total += rows.length;
            if (rows.length < CATCH_UP_PAGE) break;
          }
          await client.query('COMMIT');
        } catch (error) {
          // Nothing deleted: what was routed is routed again, with its ids, by the next catch-up.
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
        outbox.resolved = resolved;
        outbox.window = snapshotWindow(snapshot, lsn);
        if (total > 0) logger.info({ outbox: outbox.name, rows: total }, 'outbox caught up from its table');
      });
      outbox.active = true;
      outbox.lastError = null;
    } catch (error) {
      outbox.lastError = describeOutboxError(error, 'catching up failed');
      logger.warn({ err: error, outbox: outbox.name }, 'outbox could not be caught up; retrying at the next inspection');
    }
  };

  const eventsOf = (outbox: WalOutbox, rows: readonly OutboxRow[]) => {
    const events: RawEventInput[] = [];
    const routedIds: string[] = [];
    const dead: DeadRow[] = [];
    for (const row of rows) {
      // A throw here would fail the catch-up, or the CDC session's chunk, at every attempt.
      const event = outboxRowOutcome(row, outbox.binding, (error) => {
        logger.error({ err: error, outbox: outbox.name, id: row.id }, 'outbox: a row could not be made an event');
      });
      if (typeof event === 'string') dead.push({ id: row.id, reason: event });
      else {
        events.push(event);
        routedIds.push(row.id);
      }
    }
    return { events, routedIds, dead };
  };

  const count = (outbox: WalOutbox, routed: number, dead: readonly DeadRow[]) => {
    outbox.routed += routed;
    if (routed > 0) options.metrics?.outboxRouted.inc({ outbox: outbox.name }, routed);
    for (const { id, reason } of dead) {
      options.metrics?.outboxDead.inc({ outbox: outbox.name, reason });
      outbox.deadRows.add(reason);
      logger.warn({ outbox: outbox.name, id, reason }, 'outbox: row set aside as dead');
    }
  };

  /** Deletes routed rows and marks dead ones, a batch at a time; a batch that fails waits, first in line, for the next round. */
  const cleanUp = (outbox: WalOutbox): Promise<void> => {
    const run = cleaning.then(async () => {
      const queue = outbox.cleanUpQueue;
      if (queue.empty) return;
      while (!queue.empty) {
        const batch = queue.take(CLEAN_UP_BATCH);
        try {
          await outbox.binding.connections.withClient(async (client) => {
            // One transaction, its waits bounded: a routed row another session holds fails the round
            // fast (the batch is given back) rather than holding every later round and catch-up.
            await client.query('BEGIN');
            try {
              await limitWaits(client, OUTBOX_CONNECTION_LIMITS);
              await deleteRows(client, outbox.table, batch.ids);
              for (const { id, reason } of batch.dead) await markDead(client, outbox.table, id, reason);
              await client.query('COMMIT');
            } catch (error) {
              await client.query('ROLLBACK').catch(() => undefined);
              throw error;
            }
          });
        } catch (error) {
          queue.giveBack(batch);
          throw error;
        }
      }
      cleanUpError(outbox, 'routed', undefined);
    });
    // Kept settled, as the gate is: chained on a rejected round, every later round (and every
    // catch-up, which cleans up first) would fail with its error without running, until a restart.
    cleaning = run.catch(() => undefined);
    return run;
  };

  const cleanUpAll = async (): Promise<void> => {
    for (const outbox of outboxes.values()) {
      await cleanUp(outbox).catch((error: unknown) => {
        cleanUpError(outbox, 'routed', describeOutboxError(error, 'cleaning up routed rows (DELETE FROM the table) failed'));
        logger.warn({ err: error, outbox: outbox.name }, 'outbox clean-up failed; retrying');
      });
    }
  };

  const timer = setInterval(() => void cleanUpAll(), CLEAN_UP_EVERY_MS);
  timer.unref();

  return {
    get catchingUp() {
      return catchingUp;
    },

    set(bindings) {
      const next = new Map<string, WalOutbox>();
      for (const binding of bindings) {
        const existing = outboxes.get(binding.outboxId);
        if (existing && sameBinding(existing.binding, binding)) {
          next.set(binding.outboxId, existing);
          continue;
        }
        const outbox = new WalOutbox(binding);
        // New rules or another URL for the same table (one outbox id is one table, however its URL
        // or name is written): what was routed under the old ones is still to be cleaned up.
        if (existing) {
          outbox.cleanUpQueue = existing.cleanUpQueue;
          // Same outbox id, same counts: its dead rows not written yet are still to be.
          outbox.deadRows = existing.deadRows;
        }
        next.set(binding.outboxId, outbox);
      }
      const added = [...next.values()].filter((outbox) => outboxes.get(outbox.binding.outboxId) !== outbox);
      outboxes = next;
      // catchUp never rejects: a failure is kept in the outbox's lastError and retried by inspect().
      if (ready) for (const outbox of added) void gate(() => catchUp(outbox));
    },

    async onReady() {
      ready = true;
      await gate(async () => {
        for (const outbox of outboxes.values()) await catchUp(outbox);
      });
    },

    async suspend() {
      ready = false;
      await catchingUp;
      // The transaction being read is received again from its first chunk.
      for (const outbox of outboxes.values()) {
        outbox.active = false;
        outbox.transactionRows.reset();
      }
    },

    take(chunk) {
      const events: RawEventInput[] = [];
      const notes: { outbox: WalOutbox; routedIds: string[]; dead: DeadRow[] }[] = [];
      for (const outbox of outboxes.values()) {
        const { resolved } = outbox;
        if (!outbox.active || !resolved || outbox.seenByCatchUp(chunk)) continue;
        const folded = outbox.transactionRows.fold(chunk, (table) => table.name === resolved.name && table.schema === resolved.schema);
        if (folded.firstEarly) {
          logger.warn(
            { outbox: outbox.name, xid: chunk.xid, limit: HELD_ROWS_LIMIT, byteLimit: HELD_BYTES_LIMIT },
            'a transaction inserts more outbox rows (or bytes of them) than are held until its end: the oldest are routed as they stand, a later change of them in it is not seen',
          );
        }
        if (folded.rows.length === 0) continue;
        const part = eventsOf(outbox, folded.rows.map(outboxRowOf));
        events.push(...part.events);
        notes.push({ outbox, routedIds: part.routedIds, dead: part.dead });
      }
      return {
        events,
        routed() {
          for (const { outbox, routedIds, dead } of notes) {
            count(outbox, routedIds.length, dead);
            const dropped = outbox.cleanUpQueue.add(routedIds, dead);
            if (dropped > 0) logger.warn({ outbox: outbox.name, dropped }, 'outbox clean-up is behind: routed rows stay in the table until the next catch-up');
          }
        },
      };
    },

    async inspect() {
      const figures: WalOutboxFigures[] = [];
      for (const outbox of outboxes.values()) {
        if (ready && !outbox.active) void gate(() => catchUp(outbox));
        try {
          outbox.counts = await outbox.binding.connections.withClient(async (client) => {
            if (Date.now() - outbox.lastSweep >= RETENTION_SWEEP_EVERY_MS) {
              outbox.lastSweep = Date.now();
              try {
                // Within its budget, as the figures wait for it; cut short, the next inspection sweeps on.
                const { more } = await deleteProcessed(client, outbox.table, options.retentionMs, { batchSize: CLEAN_UP_BATCH });
                if (more) outbox.lastSweep = 0;
                cleanUpError(outbox, 'retention', undefined);
              } catch (error) {
                // Said as what failed, kept until a sweep works: tried again at every inspection meanwhile.
                cleanUpError(outbox, 'retention', describeOutboxError(error, 'the retention clean-up (DELETE of processed rows) failed'));
                outbox.lastSweep = 0;
              }
            }
            return outboxCounts(client, outbox.table);
          });
          if (outbox.active) outbox.lastError = null;
        } catch (error) {
          outbox.lastError = describeOutboxError(error, 'the outbox cannot be read');
        }
        figures.push({ binding: outbox.binding, ...outbox.counts, ...outbox.handOver(), lastError: lastErrorOf(outbox) });
      }
      return figures;
    },

    failed(reason) {
      return [...outboxes.values()].map((outbox) => ({ binding: outbox.binding, ...outbox.counts, ...outbox.handOver(), lastError: `the WAL reader cannot start: ${reason}` }));
    },

    async stop() {
      clearInterval(timer);
      ready = false;
      await catchingUp;
      await cleanUpAll();
    },
  };
}

function sameBinding(a: WalOutboxBinding, b: WalOutboxBinding): boolean {
  return (
    a.table === b.table &&
    a.connections === b.connections &&
    a.scope.app === b.scope.app &&
    a.scope.env === b.scope.env &&
    a.requireTenant === b.requireTenant &&
    a.maxPayloadBytes === b.maxPayloadBytes
  );
}
