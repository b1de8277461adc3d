import type { Database } from '../../db/database.ts';
import { ErrorCode, faultOf, InternalError, isTributaryError, type TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { createKeyedCoalescer } from '../coordination/keyed-serial.ts';
import type { DocumentCache } from './document-cache.ts';
import { leaseId } from './document-leases.ts';
import { rowHolds, selectDocument, stateOf, writeDocument, type StoredKey } from './document-store.ts';
import type { CachedEntry } from './document-cache.ts';
import { conflict } from './documents.ts';
import { DEFAULT_REPUBLISH_GRACE_MS } from './unpublished-events.ts';

/**
 * Writes dirty cache entries to Postgres: right after each write (coalesced per document, so a
 * burst of writes costs one flush in flight and one after it), and in a sweep every few seconds
 * for entries whose flush failed or whose instance died before flushing. Flushes are idempotent
 * and only move a row forward (`WHERE revision < new revision`), so instances may flush the same
 * document concurrently.
 *
 * With `compareAndSet` (sync durability), a flush also requires that the row has not moved past
 * the revision the entry knows Postgres has (`flushed`): when Redis loses its data while a change
 * is on its way to Postgres, another instance decides from the row, and both changes carry the
 * same revision. Only the first to reach Postgres is written; the other is taken back from the
 * cache (the entry then holds what Postgres has) and its flush fails with CONFLICT — its writer,
 * not answered yet, gets that CONFLICT, never a success.
 *
 * The dirty set is the whole cluster's, every tenant's: an entry the database refuses (not an
 * outage — a value it cannot store, a constraint) must not hold up the others. The sweep goes on
 * past it and retries it at every pass, logging it once per `FAILING_LOG_INTERVAL_MS`. An outage
 * (UNAVAILABLE: the database or Redis away) fails every entry alike: that ends the pass.
 */
export interface DocumentFlusher {
  /**
   * Resolves once a flush of the entry that started after this call has finished.
   * @throws CONFLICT (`isLostFlush`) when, with `compareAndSet`, another change of the document
   * reached Postgres first: the entry's change was taken back.
   */
  flush(entryKey: string): Promise<void>;
  /** Flushes in the background; a failure is logged and left to the sweep. */
  schedule(entryKey: string): void;
  /** Flushes every dirty entry older than `olderThanMs`; returns how many were flushed. */
  sweep(olderThanMs: number): Promise<number>;
  /** Stops the sweep timer, then flushes what is dirty (best effort). Idempotent. */
  close(): Promise<void>;
}

export interface DocumentFlusherOptions {
  readonly db: Database;
  readonly cache: DocumentCache;
  readonly logger: Logger;
  /**
   * How far a flush raises a document's revision ceiling past the flushed revision: how many
   * revisions the cache may then acknowledge before Postgres has them (0 in sync durability).
   */
  readonly ceilingHeadroom: number;
  /**
   * Whether a flush writes only over the revision the entry knows Postgres has (sync durability,
   * where a change is answered only after its flush). Async durability does without: a cache that
   * lost its data resumes above the ceiling (`document-leases.ts`), so its revisions cannot meet
   * those of the lost changes.
   */
  readonly compareAndSet: boolean;
  /**
   * How long the event of a change flushed with it (sync durability: kept in the entry by the
   * write) stays marked unpublished before it is due to be published again (`unpublished-events.ts`).
   * @default DEFAULT_REPUBLISH_GRACE_MS
   */
  readonly republishGraceMs?: number;
  /** @default 5000 */
  readonly sweepIntervalMs?: number;
  /** Entries one pass of the sweep takes from the dirty set at a time (it goes on while batches are full). @default 200 */
  readonly sweepBatch?: number;
  /** The clock of `FAILING_LOG_INTERVAL_MS`, in ms. @default Date.now */
  readonly now?: () => number;
}

/** How often an entry the sweep keeps failing to write is logged again (it is retried at every sweep). */
export const FAILING_LOG_INTERVAL_MS = 10 * 60_000;

export function createDocumentFlusher(options: DocumentFlusherOptions): DocumentFlusher {
  const { db, cache, ceilingHeadroom, compareAndSet } = options;
  const logger = componentLogger(options.logger, 'sync-flush');
  /** Per entry: the flush running now, and one queued behind it for callers that came later. */
  const flushes = createKeyedCoalescer();
  /** What `close` waits for. */
  const inFlight = new Set<Promise<void>>();
  let sweeping: Promise<number> | undefined;
  let closed: Promise<void> | undefined;
  const now = options.now ?? Date.now;
  const sweepBatch = options.sweepBatch ?? 200;
  /** Entries the last pass could not write, and when each was last logged: at most the dirty set. */
  let failing = new Map<string, number>();

  const flushOnce = async (entryKey: string): Promise<void> => {
    const found = await cache.dirtyEntry(entryKey);
    if (!found) {
      // Gone (expired once clean): drop it from the dirty set. Dirty entries never expire, so one
      // still listed as dirty was removed by something else (an eviction policy that ignores TTLs,
      // a manual DEL): its unflushed changes are lost — say so.
      if (!(await cache.markFlushed(entryKey, '', 0, undefined))) {
        logger.error({ entryKey }, 'a dirty document vanished from the cache before it was written to the database');
      }
      return;
    }
    const { key, entry, event } = found;
    if (entry.flushed >= entry.state.revision) {
      await cache.markFlushed(entryKey, entry.epoch, entry.flushed, undefined);
      return;
    }
    const { state } = entry;
    const current = await cache.lease();
    // A stale entry's grant belongs to its own epoch: no current entry may use it.
    const generation = current.epoch === entry.epoch ? current.generation : '';
    const lease = leaseId({ epoch: entry.epoch, generation });
    // A database outage rejects with UNAVAILABLE (src/db); the change stays dirty in the cache.
    const basedOn = compareAndSet ? entry.flushed : undefined;
    // The change's event (sync durability) is marked unpublished in the same statement: the change
    // is saved, i.e. acknowledged, once Postgres has it.
    const mark = event === undefined ? undefined : { event, graceMs: options.republishGraceMs ?? DEFAULT_REPUBLISH_GRACE_MS };
    const ceiling = await writeDocument(db, key, state, { ceiling: state.revision + ceilingHeadroom, lease }, basedOn, mark);
    // Nothing written: Postgres already had this revision or a later one — this very change
    // (another flush of it won), or, with compareAndSet, possibly another one.
    if (ceiling === undefined && compareAndSet) return settleRefused(entryKey, key, entry);
    await cache.markFlushed(entryKey, entry.epoch, state.revision, ceiling === undefined ? undefined : { ceiling, generation }, state);
  };

  /**
   * A compare-and-set flush that wrote nothing: flushed if the row is exactly the entry's change,
   * else the change lost to another one and is taken back (the entry returns to the row's state,
   * if it still holds exactly this change). @throws CONFLICT then.
   */
  const settleRefused = async (entryKey: string, key: StoredKey, entry: CachedEntry): Promise<void> => {
    const { state } = entry;
    const row = await selectDocument(db, key);
    if (row && rowHolds(row, state)) {
      await cache.markFlushed(entryKey, entry.epoch, state.revision, undefined, state);
      return;
    }
    // Not written although nothing else was: the row moved past `flushed` (a row is never removed).
    if (!row) throw new InternalError('DOCUMENT_ROW_MISSING', `document ${entryKey} has no row in the database, yet its flush wrote nothing`);
    const takenBack = await cache.takeBack(entryKey, entry.epoch, state, stateOf(row));
    logger.warn(
      { entryKey, revision: state.revision, stored: row.revision, takenBack },
      'another change of the document reached the database first (the cache lost its data meanwhile): this one is not written, and taken back from the cache if it still holds it',
    );
    throw lostFlush(row.revision);
  };

  const flush = (entryKey: string): Promise<void> => {
    const flushed = flushes.request(entryKey, () => flushOnce(entryKey));
    inFlight.add(flushed);
    void flushed.then(
      () => inFlight.delete(flushed),
      () => inFlight.delete(flushed),
    );
    return flushed;
  };

  const sweepOnce = async (olderThanMs: number): Promise<number> => {
    let flushed = 0;
    // Refused entries stay in the dirty set, at its head (it is ordered by age): each batch asks
    // for that many more, so a pass always gets past them.
    const failed = new Map<string, number>();
    try {
      for (;;) {
        const batch = (await cache.dirtySince(olderThanMs, sweepBatch + failed.size)).filter((entryKey) => !failed.has(entryKey));
        for (const entryKey of batch) {
          try {
            await flush(entryKey);
            flushed += 1;
          } catch (error) {
            if (isTributaryError(error) && error.code === ErrorCode.UNAVAILABLE) throw error;
            // Taken back (logged): no longer dirty.
            if (isLostFlush(error)) continue;
            failed.set(entryKey, logRefused(entryKey, error));
          }
        }
        if (batch.length < sweepBatch) break;
      }
    } catch (error) {
      for (const [entryKey, logged] of failed) failing.set(entryKey, logged);
      throw error;
    }
    // A whole pass: entries no longer refused (written since, or no longer dirty) are forgotten,
    // so the map never outgrows the dirty set.
    failing = failed;
    return flushed;
  };

  /** Logs an entry the database refused, unless it was logged within FAILING_LOG_INTERVAL_MS; answers when it last was. */
  const logRefused = (entryKey: string, error: unknown): number => {
    const logged = failing.get(entryKey);
    const at = now();
    if (logged !== undefined && at - logged < FAILING_LOG_INTERVAL_MS) return logged;
    logger.error(
      { err: error, fault: faultOf(error), entryKey },
      'the database refuses a dirty document; it stays in the cache, is retried at every sweep, and the sweep goes on with the others',
    );
    return at;
  };

  const sweep = (olderThanMs: number): Promise<number> => {
    sweeping ??= sweepOnce(olderThanMs).finally(() => (sweeping = undefined));
    return sweeping;
  };

  const interval = options.sweepIntervalMs ?? 5000;
  // Entries dirty for less than a second are most likely being flushed right now.
  const timer = setInterval(() => {
    sweep(1000).catch((error: unknown) => logger.warn({ err: error }, 'dirty document sweep failed; retrying at the next one'));
  }, interval);
  timer.unref();

  return {
    flush,
    schedule(entryKey) {
      flush(entryKey).catch((error: unknown) => logger.warn({ err: error, entryKey }, 'document flush failed; the sweep retries it'));
    },
    sweep,
    close() {
      closed ??= (async () => {
        clearInterval(timer);
        await Promise.allSettled([...inFlight, sweeping]);
        await sweep(0).catch((error: unknown) => logger.warn({ err: error }, 'dirty documents left in the cache at shutdown'));
      })();
      return closed;
    },
  };
}

/** The CONFLICTs of lost flushes (`isLostFlush`), told apart from any other CONFLICT by identity. */
const lostFlushes = new WeakSet<Error>();

function lostFlush(currentRevision: number): TributaryError {
  const error = conflict(currentRevision, 'The document changed in the database before this change could be saved; it was not saved');
  lostFlushes.add(error);
  return error;
}

/** Whether a flush failed because another change of the document reached Postgres first (its change was taken back). */
export function isLostFlush(error: unknown): error is TributaryError {
  return error instanceof Error && lostFlushes.has(error);
}
