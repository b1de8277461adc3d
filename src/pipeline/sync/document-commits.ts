import { isDatabaseOutage } from '../../db/connection-failure.ts';
import type { Database } from '../../db/database.ts';
import { ErrorCode, InternalError, isTributaryError, SqlState, SqlStateClass, sqlStateOf, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { KeyedSerial, Slot } from '../coordination/keyed-serial.ts';
import type { CachedEntry, DocumentCache } from './document-cache.ts';
import type { DocumentEventPublisher } from './document-events.ts';
import { isLostFlush, type DocumentFlusher } from './document-flusher.ts';
import { rowHolds, selectDocument, stateOf } from './document-store.ts';
import type { DocumentChange, DocumentState } from './document-writes.ts';
import { documentEntity, savedButUnavailable, type DocumentKey } from './documents.ts';
import type { DocumentEvent } from './unpublished-events.ts';

/**
 * The end of a write in sync durability: the change is answered and published only once Postgres
 * has committed it, so no client or subscriber ever sees a revision Postgres lacks, and a Redis
 * that loses its data costs nothing acknowledged (the document keeps its revision).
 *
 * When Postgres cannot take writes for the moment — down, read-only after a failover, out of
 * disk — the change stays in the cache (dirty) and the writer gets UNAVAILABLE; its event goes out
 * once a flush has committed it, still in revision order (its publishing turn was taken under the
 * document's lock). The document's next write, on any instance, first flushes it.
 *
 * When Postgres refuses what the change holds (a value it cannot store, a constraint, a size
 * limit), retrying would only repeat the refusal — and hold up every later write of the document
 * — so the change is taken back: the entry returns to the state Postgres has, as if the write had
 * not been made. Nobody has seen it (readers and events get only what Postgres has), so its
 * revision goes to the next change. The writer gets INTERNAL_SERVER_ERROR, the refusal logged
 * with its cause; a change answered UNAVAILABLE earlier and refused so once Postgres is back is
 * taken back with an error log. Any other refusal takes back a change not answered yet, but one
 * answered UNAVAILABLE is kept and retried: it was promised.
 *
 * When another change of the same revision reached Postgres first (Redis lost its data while this
 * one was on its way, and another instance decided from the row), the flush writes nothing and
 * takes the change back (`DocumentFlusher`): the writer gets that CONFLICT, with the revision
 * Postgres has, and a change answered UNAVAILABLE earlier is dropped unpublished.
 */
export interface DocumentCommits {
  /**
   * Flushes a change written to the cache (entry `entryKey` of `epoch`, with its `event`, which the
   * flush marks unpublished with it), then publishes the event. `late`: a write whose reply was lost
   * (`lost-writes.ts`), whose event a later write may have published already: only if still marked.
   * @throws UNAVAILABLE naming the revision (`savedButUnavailable`) when Postgres did not take the change; CONFLICT with
   * `currentRevision` when another change of the document reached Postgres first.
   */
  commitAndPublish(key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange, event: DocumentEvent, late?: boolean): Promise<void>;
  /**
   * Flushes a change answered UNAVAILABLE earlier (`entry` holds it), or takes it back when
   * Postgres refuses its content, or lost to another change that reached Postgres first.
   * @throws UNAVAILABLE while Postgres cannot take it for the moment.
   */
  flushPending(key: DocumentKey, entryKey: string, entry: CachedEntry): Promise<void>;
  /**
   * Stops waiting for Postgres: each change still waiting is looked at once more (flushed, and
   * published if Postgres has it); those still not committed then are not published. Idempotent.
   */
  close(): Promise<void>;
}

export interface DocumentCommitsOptions {
  /** Where a change is confirmed once the cache lost it. */
  readonly db: Database;
  readonly cache: DocumentCache;
  /** Writes the changes to Postgres (shared with the write path and the sweep). */
  readonly flusher: DocumentFlusher;
  readonly events: DocumentEventPublisher;
  /** The publishing turns per document entity (shared with the sweep of unpublished events). */
  readonly turns: KeyedSerial;
  readonly logger: Logger;
}

/** `gone`: no longer in the cache, taken back (`settle`); `unconfirmed`: the cache lost it and Postgres does not have it. */
type Outcome = 'committed' | 'pending' | 'gone' | 'unconfirmed';

/**
 * Why a flush failed: `outage`, Postgres (or Redis) cannot take it for the moment — retried as it
 * is; `content`, Postgres refuses what the change holds — retrying repeats it; `other`, neither.
 */
type Failure = 'outage' | 'content' | 'other';

/** Retries of the flush of a change answered UNAVAILABLE, in ms. */
const RETRY = { initialMs: 100, maxMs: 2000, jitterMs: 50 };

/** SQLSTATEs of a statement that failed for the moment, not for what it writes: retried like an outage. */
const TRANSIENT_STATES: ReadonlySet<string> = new Set([
  SqlState.SERIALIZATION_FAILURE,
  SqlState.DEADLOCK_DETECTED,
  SqlState.QUERY_CANCELED,
  SqlState.LOCK_NOT_AVAILABLE,
]);

/**
 * SQLSTATE classes of a refusal of what a change holds: `22` data_exception (a value the column
 * cannot take), `23` integrity_constraint_violation, `54` program_limit_exceeded (a value too large).
 */
const CONTENT_CLASSES: readonly string[] = [SqlStateClass.DATA_EXCEPTION, SqlStateClass.INTEGRITY_CONSTRAINT_VIOLATION, SqlStateClass.PROGRAM_LIMIT_EXCEEDED];

/** The state of a document Postgres has no row of (as `reconcile` takes it). */
const ABSENT: DocumentState = { revision: 0, data: {}, deleted: true, createdAt: new Date(0), updatedAt: new Date(0) };

const TAKEN_BACK = 'the database refused a change answered UNAVAILABLE (not an outage): it is taken back from the cache; its event is not published';

export function createDocumentCommits(options: DocumentCommitsOptions): DocumentCommits {
  const { db, cache, flusher, events } = options;
  const logger = componentLogger(options.logger, 'sync-commit');
  const publishTurns = options.turns;
  const closing = new AbortController();
  const waiting = new Set<Promise<void>>();

  /**
   * Flushes the entry, then tells whether Postgres has the change. While the entry lives on in the
   * epoch it was written in, the cache says (`settle`: the entry's state and flushed mark, and the
   * change's wait mark, which a take-back on any instance deletes); once the cache lost it, only
   * Postgres's row can confirm it — unless the epoch ended with the entry still holding the change
   * unflushed (Redis restarted with its data: the entry left in that epoch, or reloaded into the new
   * one by an instance): the change is pending, and reaches Postgres at that entry's flush (read now, the row would call it
   * unconfirmed and its event would wait for the sweep). A failed flush counts only while the change
   * is pending so — another instance may have settled it meanwhile — or, when another change
   * reached Postgres first, unless this one is committed after all. @throws the flush's error then.
   */
  const outcome = async (key: DocumentKey, entryKey: string, epoch: string, { after }: DocumentChange): Promise<Outcome> => {
    const failed = await flusher.flush(entryKey).then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    const seen = await cache.settle(entryKey, epoch, after);
    const pending = seen === 'pending' || seen === 'moved';
    if (failed && (pending || (seen !== 'committed' && isLostFlush(failed.error)))) throw failed.error;
    if (seen === 'moved') return 'pending';
    if (seen !== 'lost') return seen;
    const row = await selectDocument(db, key);
    return row && rowHolds(row, after) ? 'committed' : 'unconfirmed';
  };

  /**
   * Takes back a change (`state`, written in `epoch`) Postgres refused: the entry returns to the
   * state Postgres has (or, left in an ended epoch, is deleted), if it still holds exactly this
   * change unflushed. Answers 'committed' when Postgres has the change after all (another flush of
   * it got through, before or during the take-back).
   */
  const takeBack = async (key: DocumentKey, entryKey: string, epoch: string, state: DocumentState): Promise<'committed' | 'taken back'> => {
    const row = await selectDocument(db, key);
    if (row && rowHolds(row, state)) {
      await cache.markFlushed(entryKey, epoch, state.revision, undefined, state);
      return 'committed';
    }
    const stored = row ? stateOf(row) : ABSENT;
    if (stored.revision >= state.revision) return 'taken back';
    await cache.takeBack(entryKey, epoch, state, stored);
    // Whether or not it took the change back, a flush of it elsewhere (the sweep, once a refusal
    // cleared) may have committed it since the row was read: Postgres has it after all. Marked
    // flushed, an entry taken back behind it is deleted, to be loaded again from the row.
    const again = await selectDocument(db, key);
    if (!again || !rowHolds(again, state)) return 'taken back';
    await cache.markFlushed(entryKey, epoch, state.revision, undefined, state);
    return 'committed';
  };

  /**
   * Flushes until Postgres has the change, then publishes it (in the slot's turn). Ends without
   * publishing when the change is taken back — here when Postgres refuses its content, or by the
   * document's next write on any instance — or when the cache lost it before Postgres could be
   * seen to have it: subscribers then see a gap at the next change and resync. At shutdown, the
   * change is looked at once more.
   */
  const publishOnceCommitted = async (key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange, event: DocumentEvent): Promise<void> => {
    const backoff = createBackoff(RETRY);
    const revision = change.after.revision;
    let refusalLogged = false;
    for (;;) {
      const open = await pause(backoff.next(), closing.signal);
      let found: Outcome = 'pending';
      try {
        found = await outcome(key, entryKey, epoch, change);
      } catch (error) {
        if (isLostFlush(error)) {
          logger.warn({ entryKey, revision }, 'a change answered UNAVAILABLE lost to another change of its revision that reached the database first; its event is not published');
          return;
        }
        const failure = failureOf(error);
        if (failure === 'content') {
          const settled = await takeBack(key, entryKey, epoch, change.after).catch(() => 'pending' as const);
          if (settled === 'taken back') {
            logger.error({ err: error, entryKey, revision }, TAKEN_BACK);
            return;
          }
          found = settled;
        } else if (failure === 'other' && !refusalLogged) {
          refusalLogged = true;
          logger.error(
            { err: error, entryKey, revision },
            'the database refuses a change answered UNAVAILABLE, not for its content: it stays in the cache and is retried until the database takes it',
          );
        } else {
          logger.debug({ err: error, entryKey }, 'database still unavailable for a pending document change');
        }
      }
      if (found === 'committed') {
        // Unless the document's next write (on any instance) or the sweep published it already.
        await events.publish(key, event, { ifMarked: true }).catch(() => undefined); // logged by the publisher; its mark stays for the sweep
        return;
      }
      if (found === 'gone') {
        logger.warn({ entryKey, revision }, 'a change answered UNAVAILABLE was taken back by a later write of the document (the database refused it); its event is not published');
        return;
      }
      if (found === 'unconfirmed') {
        logger.error({ entryKey, revision }, 'a change answered UNAVAILABLE left the cache before the database was seen to have it; its event is not published');
        return;
      }
      if (!open) {
        logger.warn({ entryKey, revision }, 'shutting down before the database had a document change; its event is not published');
        return;
      }
    }
  };

  const wait = (key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange, event: DocumentEvent, slot: Slot) => {
    const done = slot.run(() => publishOnceCommitted(key, entryKey, epoch, change, event)).catch(() => undefined);
    waiting.add(done);
    void done.then(() => waiting.delete(done));
  };

  return {
    async commitAndPublish(key, entryKey, epoch, change, event, late = false) {
      // Taken under the document's lock: events leave in revision order even when one waits.
      const slot = publishTurns.reserve([documentEntity(key)]);
      const { revision } = change.after;
      let found: Outcome = 'pending';
      let cause: unknown;
      try {
        found = await outcome(key, entryKey, epoch, change);
      } catch (error) {
        // Another change of this revision is in Postgres; this one was taken back: nothing saved.
        if (isLostFlush(error)) {
          slot.cancel();
          throw error;
        }
        cause = error;
        // Refused, not an outage: no UNAVAILABLE promising a write that cannot happen. A take-back
        // that fails (Postgres gone meanwhile) leaves the change to the wait below, which retries it.
        const settled = failureOf(error) === 'outage' ? undefined : await takeBack(key, entryKey, epoch, change.after).catch(() => undefined);
        if (settled === 'taken back') {
          slot.cancel();
          throw new InternalError('DOCUMENT_WRITE_REFUSED', 'the database refused a document change (not an outage); it was taken back from the cache', { cause: error });
        }
        if (settled === 'committed') found = settled;
      }
      if (found === 'committed') return events.publish(key, event, { slot, ifMarked: late });
      if (found !== 'pending') {
        // Gone before it was answered (the document's lock lapsed and another write took it back,
        // or the cache lost it): nothing was saved, and nothing is promised.
        slot.cancel();
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'The change was not saved: the document cache lost it before the database had it; retry shortly');
      }
      wait(key, entryKey, epoch, change, event, slot);
      throw savedButUnavailable(
        revision,
        `The change was saved as revision ${revision} in the cache but not yet in the database; it will be written, and published, when the database is back`,
        cause,
      );
    },

    async flushPending(key, entryKey, entry) {
      try {
        await flusher.flush(entryKey);
      } catch (error) {
        // Taken back by the flush (another change of its revision is in Postgres): this write goes on from the row.
        if (isLostFlush(error)) return;
        const failure = failureOf(error);
        // An outage refuses this write: it was not made.
        if (failure === 'outage') throw new TributaryError(ErrorCode.UNAVAILABLE, 'The database is unavailable right now; retry shortly', { cause: error });
        // Refused for another reason than its content: the pending change was promised, so it
        // stays, ahead of this write, which fails.
        if (failure === 'other') throw error;
        // Its content refused for good: the pending change is taken back (its wait, on whichever
        // instance, sees it gone), and this write goes on without it.
        if ((await takeBack(key, entryKey, entry.epoch, entry.state)) === 'taken back') {
          logger.error({ err: error, entryKey, revision: entry.state.revision }, TAKEN_BACK);
        }
      }
    },

    async close() {
      closing.abort();
      await Promise.allSettled(waiting);
    },
  };
}

/**
 * An outage is UNAVAILABLE (from src/db, which maps an unreachable, read-only or full database to
 * it, or from the cache), a database error of that kind not mapped (`isDatabaseOutage`), or a
 * statement that failed for the moment (a deadlock, a lock or statement timeout).
 */
function failureOf(error: unknown): Failure {
  if (isTributaryError(error)) return error.code === ErrorCode.UNAVAILABLE ? 'outage' : 'other';
  if (isDatabaseOutage(error)) return 'outage';
  const state = sqlStateOf(error);
  if (state === undefined) return 'other';
  if (TRANSIENT_STATES.has(state)) return 'outage';
  return CONTENT_CLASSES.some((stateClass) => state.startsWith(stateClass)) ? 'content' : 'other';
}
