import type { Database } from '../../db/database.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import { createKeyedSerial, type Slot } from '../coordination/keyed-serial.ts';
import type { DocumentCache } from './document-cache.ts';
import type { DocumentEventPublisher } from './document-events.ts';
import type { DocumentFlusher } from './document-flusher.ts';
import { selectDocument } from './document-store.ts';
import type { DocumentChange } from './document-writes.ts';
import { documentEntity, type DocumentKey } from './documents.ts';

/**
 * The end of a write in sync durability: the change is answered and published only once Postgres
 * has committed it, so no client or subscriber ever sees a revision Postgres lacks, and a Redis
 * that loses its data costs nothing acknowledged (the document keeps its revision).
 *
 * When Postgres is down, the change stays in the cache (dirty) and the writer gets UNAVAILABLE;
 * its event goes out once a flush has committed it, still in revision order (its publishing turn
 * was taken under the document's lock). The document's next write first flushes it.
 */
export interface DocumentCommits {
  /**
   * Flushes a change written to the cache (entry `entryKey` of `epoch`), then publishes it.
   * @throws UNAVAILABLE naming the revision when Postgres did not take the change.
   */
  commitAndPublish(key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange): Promise<void>;
  /** Flushes a change answered UNAVAILABLE earlier. @throws UNAVAILABLE while Postgres is down. */
  flushPending(entryKey: string): Promise<void>;
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

export function createDocumentCommits(options: DocumentCommitsOptions): DocumentCommits {
  const { db, cache, flusher, events } = options;
  const logger = options.logger.child({ component: 'sync-commit' });
  const publishTurns = createKeyedSerial();
  const closing = new AbortController();
  const waiting = new Set<Promise<void>>();

  /**
   * Flushes the entry, then tells whether Postgres has the change. While the entry lives on in the
   * epoch it was written in, its flushed mark says (the document's next write waits for this
   * change to be flushed, so a flush that reached its revision wrote exactly it); once the cache
   * lost it, only Postgres's row can confirm it.
   */
  const outcome = async (key: DocumentKey, entryKey: string, epoch: string, { after }: DocumentChange): Promise<Outcome> => {
    await flusher.flush(entryKey);
    const read = await cache.read(entryKey);
    if (read.status === 'hit' && read.entry.epoch === epoch) return read.entry.flushed >= after.revision ? 'committed' : 'pending';
    const row = await selectDocument(db, key);
    return row?.revision === after.revision && row.updated_at.getTime() === after.updatedAt.getTime() ? 'committed' : 'unconfirmed';
  };

  /**
   * Flushes until Postgres has the change, then publishes it (in the slot's turn). Gives up when
   * the cache lost it before Postgres could be seen to have it: subscribers then see a gap at the
   * next change and resync.
   */
  const publishOnceCommitted = async (key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange): Promise<void> => {
    const backoff = createBackoff(RETRY);
    const revision = change.after.revision;
    while (await pause(backoff.next(), closing.signal)) {
      let found: Outcome;
      try {
        found = await outcome(key, entryKey, epoch, change);
      } catch (error) {
        logger.debug({ err: error, entryKey }, 'database still unavailable for a pending document change');
        continue;
      }
      if (found === 'pending') continue;
      if (found === 'committed') await events.publish(key, change).catch(() => undefined); // logged by the publisher
      else logger.error({ entryKey, revision }, 'a change answered UNAVAILABLE left the cache before the database was seen to have it; its event is not published');
      return;
    }
    logger.warn({ entryKey, revision }, 'shutting down before the database had a document change; its event is not published');
  };

  const wait = (key: DocumentKey, entryKey: string, epoch: string, change: DocumentChange, slot: Slot) => {
    const done = slot.run(() => publishOnceCommitted(key, entryKey, epoch, change)).catch(() => undefined);
    waiting.add(done);
    void done.then(() => waiting.delete(done));
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
      }
      if (found === 'committed') return events.publish(key, change, slot);
      wait(key, entryKey, epoch, change, slot);
      throw new TributaryError(
        ErrorCode.UNAVAILABLE,
        `The change was saved as revision ${revision} in the cache but not yet in the database; it will be written, and published, when the database is back`,
        { cause, details: { revision } },
      );
    },

    async flushPending(entryKey) {
      // An outage (UNAVAILABLE from src/db) refuses this write: it was not made. Any other fault
      // is internal and goes on to be logged and masked.
      await flusher.flush(entryKey).catch((error: unknown) => {
        if (!(error instanceof TributaryError) || error.code !== ErrorCode.UNAVAILABLE) throw error;
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'The database is unavailable right now; retry shortly', { cause: error });
      });
    },

    async close() {
      closing.abort();
      await Promise.allSettled(waiting);
    },
  };
}
