import type { Database } from '../../db/database.ts';
import { ErrorCode, InternalError, isTributaryError, SqlState, sqlStateOf, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import { createKeyedSerial, type Slot } from '../coordination/keyed-serial.ts';
import type { CachedEntry, DocumentCache } from './document-cache.ts';
import type { DocumentEventPublisher } from './document-events.ts';
import type { DocumentFlusher } from './document-flusher.ts';
import { selectDocument, stateOf, type DocumentRow } from './document-store.ts';
import type { DocumentChange, DocumentState } from './document-writes.ts';
import { documentEntity, type DocumentKey } from './documents.ts';

/**
 * The end of a write in sync durability: the change is answered and published only once Postgres
 * has committed it, so no client or subscriber ever sees a revision Postgres lacks, and a Redis
 * that loses its data costs nothing acknowledged (the document keeps its revision).
 *
 * When Postgres is down, the change stays in the cache (dirty) and the writer gets UNAVAILABLE;
 * its event goes out once a flush has committed it, still in revision order (its publishing turn
 * was taken under the document's lock). The document's next write first flushes it.
 *
 * When Postgres refuses the change for another reason (a value it cannot store, a constraint),
 * retrying would only repeat the refusal — and hold up every later write of the document — so the
 * change is taken back: the entry returns to the state Postgres has, as if the write had not been
 * made. Nobody has seen it (readers and events get only what Postgres has), so its revision goes
 * to the next change. The writer gets INTERNAL_SERVER_ERROR, the refusal logged with its cause; a
 * change answered UNAVAILABLE earlier and refused once Postgres is back is taken back with an
 * error log.
 */
export interface DocumentCommits {
  /**
   * Flushes a change written to the cache (entry `entryKey` of `epoch`), then publishes it.
   * @throws UNAVAILABLE naming the revision when Postgres did not take the change.
   */
  commitAndPublish(key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange): Promise<void>;
  /**
   * Flushes a change answered UNAVAILABLE earlier (`entry` holds it), or takes it back when
   * Postgres refuses it. @throws UNAVAILABLE while Postgres is down.
   */
  flushPending(key: DocumentKey, entryKey: string, entry: CachedEntry): Promise<void>;
  /** Stops waiting for Postgres: changes not committed by then are not published. Idempotent. */
  close(): Promise<void>;
}

export interface DocumentCommitsOptions {
  /** Where a change is confirmed once the cache lost it. */
  readonly db: Database;
  readonly cache: DocumentCache;
  /** Writes the changes to Postgres (shared with the write path and the sweep). */
  readonly flusher: DocumentFlusher;
  readonly events: DocumentEventPublisher;
  readonly logger: Logger;
}

type Outcome = 'committed' | 'pending' | 'unconfirmed';

/** Retries of the flush of a change answered UNAVAILABLE, in ms. */
const RETRY = { initialMs: 100, maxMs: 2000, jitterMs: 50 };

/** SQLSTATEs of a statement that failed for the moment, not for what it writes: retried like an outage. */
const TRANSIENT_STATES: ReadonlySet<string> = new Set([SqlState.SERIALIZATION_FAILURE, SqlState.DEADLOCK_DETECTED, SqlState.QUERY_CANCELED]);

/** The state of a document Postgres has no row of (as `reconcile` takes it). */
const ABSENT: DocumentState = { revision: 0, data: {}, deleted: true, createdAt: new Date(0), updatedAt: new Date(0) };

export function createDocumentCommits(options: DocumentCommitsOptions): DocumentCommits {
  const { db, cache, flusher, events } = options;
  const logger = options.logger.child({ component: 'sync-commit' });
  const publishTurns = createKeyedSerial();
  const closing = new AbortController();
  const waiting = new Set<Promise<void>>();
  /**
   * The changes of this instance waiting for Postgres (`changeId`), true once the document's next
   * write took one back: its wait must then not take the flushed mark of a later change of the
   * same revision for its own.
   */
  const waits = new Map<string, boolean>();

  /**
   * Flushes the entry, then tells whether Postgres has the change. While the entry lives on in the
   * epoch it was written in, its flushed mark says (the document's next write waits for this
   * change to be flushed, so a flush that reached its revision wrote exactly it — unless that
   * write took the change back, which `waits` tells); once the cache lost it, only Postgres's row
   * can confirm it.
   */
  const outcome = async (key: DocumentKey, entryKey: string, epoch: string, { after }: DocumentChange): Promise<Outcome> => {
    await flusher.flush(entryKey);
    const read = await cache.read(entryKey);
    if (read.status === 'hit' && read.entry.epoch === epoch) return read.entry.flushed >= after.revision ? 'committed' : 'pending';
    const row = await selectDocument(db, key);
    return row && holds(row, after) ? 'committed' : 'unconfirmed';
  };

  /**
   * Takes back a change (`state`, written in `epoch`) Postgres refused: the entry returns to the
   * state Postgres has, if it still holds the change (else it is gone already). Answers
   * 'committed' when Postgres has the change after all (another flush of it got through).
   */
  const takeBack = async (key: DocumentKey, entryKey: string, epoch: string, state: DocumentState): Promise<'committed' | 'taken back'> => {
    const row = await selectDocument(db, key);
    if (row && holds(row, state)) {
      await cache.markFlushed(entryKey, epoch, state.revision, undefined);
      return 'committed';
    }
    const stored = row ? stateOf(row) : ABSENT;
    const read = await cache.read(entryKey);
    const held = read.status === 'hit' && read.entry.epoch === epoch && sameState(read.entry.state, state);
    // The write is conditional on the revision (another change of it may follow a take-back); once
    // marked flushed, the entry is clean again.
    if (held && stored.revision < state.revision && (await cache.write(entryKey, epoch, state.revision, stored)) === 'ok') {
      await cache.markFlushed(entryKey, epoch, stored.revision, undefined);
    }
    return 'taken back';
  };

  /**
   * Flushes until Postgres has the change, then publishes it (in the slot's turn). Gives up when
   * the cache lost it before Postgres could be seen to have it: subscribers then see a gap at the
   * next change and resync.
   */
  const publishOnceCommitted = async (key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange): Promise<void> => {
    const backoff = createBackoff(RETRY);
    const revision = change.after.revision;
    const id = changeId(entryKey, epoch, change.after);
    while (await pause(backoff.next(), closing.signal)) {
      if (waits.get(id) === true) return;
      let found: Outcome;
      try {
        found = await outcome(key, entryKey, epoch, change);
      } catch (error) {
        if (isRetryable(error)) {
          logger.debug({ err: error, entryKey }, 'database still unavailable for a pending document change');
          continue;
        }
        const settled = await takeBack(key, entryKey, epoch, change.after).catch(() => undefined);
        if (settled === undefined) continue;
        if (settled === 'taken back') {
          logger.error({ err: error, entryKey, revision }, 'the database refused a change answered UNAVAILABLE (not an outage): it is taken back from the cache; its event is not published');
          return;
        }
        found = settled;
      }
      // Taken back by the document's next write (which logged it): a flushed mark is a later change's.
      if (waits.get(id) === true) return;
      if (found === 'pending') continue;
      if (found === 'committed') await events.publish(key, change).catch(() => undefined); // logged by the publisher
      else logger.error({ entryKey, revision }, 'a change answered UNAVAILABLE left the cache before the database was seen to have it; its event is not published');
      return;
    }
    logger.warn({ entryKey, revision }, 'shutting down before the database had a document change; its event is not published');
  };

  const wait = (key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange, slot: Slot) => {
    const id = changeId(entryKey, epoch, change.after);
    waits.set(id, false);
    const done = slot.run(() => publishOnceCommitted(key, entryKey, epoch, change)).catch(() => undefined);
    waiting.add(done);
    void done.then(() => {
      waiting.delete(done);
      waits.delete(id);
    });
  };

  return {
    async commitAndPublish(key, entryKey, epoch, change) {
      // Taken under the document's lock: events leave in revision order even when one waits.
      const slot = publishTurns.reserve([documentEntity(key)]);
      const { revision } = change.after;
      let found: Outcome = 'pending';
      let cause: unknown;
      try {
        found = await outcome(key, entryKey, epoch, change);
      } catch (error) {
        cause = error;
        // Refused, not an outage: no UNAVAILABLE promising a write that cannot happen. A take-back
        // that fails (Postgres gone meanwhile) leaves the change to the wait below, which retries it.
        const settled = isRetryable(error) ? undefined : await takeBack(key, entryKey, epoch, change.after).catch(() => undefined);
        if (settled === 'taken back') {
          slot.cancel();
          throw new InternalError('DOCUMENT_WRITE_REFUSED', 'the database refused a document change (not an outage); it was taken back from the cache', { cause: error });
        }
        if (settled === 'committed') found = settled;
      }
      if (found === 'committed') return events.publish(key, change, slot);
      wait(key, entryKey, epoch, change, slot);
      throw new TributaryError(
        ErrorCode.UNAVAILABLE,
        `The change was saved as revision ${revision} in the cache but not yet in the database; it will be written, and published, when the database is back`,
        { cause, details: { revision } },
      );
    },

    async flushPending(key, entryKey, entry) {
      try {
        await flusher.flush(entryKey);
      } catch (error) {
        // An outage refuses this write: it was not made.
        if (isRetryable(error)) throw new TributaryError(ErrorCode.UNAVAILABLE, 'The database is unavailable right now; retry shortly', { cause: error });
        // Refused for good: the pending change is taken back, and this write goes on without it.
        // Its wait in this instance, if any, is told first: from the take-back on, the flushed mark
        // it reads may be a later change's.
        const id = changeId(entryKey, entry.epoch, entry.state);
        if (waits.has(id)) waits.set(id, true);
        const settled = await takeBack(key, entryKey, entry.epoch, entry.state).catch((takeBackError: unknown) => {
          if (waits.has(id)) waits.set(id, false);
          throw takeBackError;
        });
        if (settled === 'committed') {
          if (waits.has(id)) waits.set(id, false);
          return;
        }
        logger.error(
          { err: error, entryKey, revision: entry.state.revision },
          'the database refused a change answered UNAVAILABLE (not an outage): it is taken back from the cache; its event is not published',
        );
      }
    },

    async close() {
      closing.abort();
      await Promise.allSettled(waiting);
    },
  };
}

/** Whether Postgres's row is exactly this state of the document (revision and time of the change). */
function holds(row: DocumentRow, state: DocumentState): boolean {
  return sameState(stateOf(row), state);
}

function sameState(a: DocumentState, b: DocumentState): boolean {
  return a.revision === b.revision && a.updatedAt.getTime() === b.updatedAt.getTime();
}

/** Whether a failed flush may succeed as it is, later: an outage (UNAVAILABLE, from src/db or the cache) or a transient failure. */
function isRetryable(error: unknown): boolean {
  if (isTributaryError(error)) return error.code === ErrorCode.UNAVAILABLE;
  const state = sqlStateOf(error);
  return state !== undefined && TRANSIENT_STATES.has(state);
}

/** One change of one entry: its epoch, revision and time. */
function changeId(entryKey: string, epoch: string, state: DocumentState): string {
  return `${entryKey}\n${epoch}\n${state.revision}\n${state.updatedAt.getTime()}`;
}
