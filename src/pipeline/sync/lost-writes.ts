import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import { isDocumentCacheUnavailable, type Confirmed, type DocumentCache } from './document-cache.ts';
import { outcomeUnknown } from './documents.ts';

/**
 * A document write whose cache write (the WRITE script) was sent but got no reply — its connection
 * cut, or the reply timed out. Redis may have run it: the change is then in the cache, and goes to
 * Postgres and out as an event with the document's next write (sync durability) or at once
 * (async). Answering it as "saved nothing" would be false: the client's retry would get CONFLICT
 * for its own change, or — under an idempotency key, which a try that saved nothing frees — make
 * it twice.
 *
 * So the writer asks the cache, once it answers again (within CONFIRM_WAIT_MS, or the service's
 * `lostWriteWaitMs`), whether the write ran (`DocumentCache.confirm`, by the token the write
 * stored in the entry), fencing it in the same script: a write that reaches Redis only after that
 * (a late packet of the dropped connection) changes nothing, so the answer stays true. The write is then answered as if its reply had come:
 * - it ran: as a write that succeeded — its commit (sync) and publish go on, and answer as they do
 *   (success, or UNAVAILABLE `saved: true` with its revision when the rest could not finish);
 * - it did not: UNAVAILABLE without `saved` (retry);
 * - the entry moved on or went away since (the document's lock lapsed meanwhile, Redis lost its
 *   data): in sync durability the change's wait mark, or Postgres's row, still tells
 *   (`DocumentCommits.commitAndPublish`, as for any write); in async durability nothing does —
 *   and when the cache cannot be asked in time either: UNAVAILABLE with `saved: null`
 *   (`outcomeUnknown`): the change may be there. A retry under the same idempotency key then
 *   answers the same, never writes again (`keyed-writes.ts`).
 */

/** How long a writer keeps asking the cache whether its write ran, once the write failed, in ms. */
export const CONFIRM_WAIT_MS = 5000;
/** Waits between those tries: a dropped connection is back within ioredis's first reconnects. */
const CONFIRM_RETRY = { initialMs: 50, maxMs: 500 };

/** The write whose reply was lost: its entry, epoch and base revision, and its token. */
export interface LostWrite {
  readonly entryKey: string;
  readonly epoch: string;
  readonly baseRevision: number;
  readonly token: string;
  readonly cause: unknown;
}

/**
 * Finds out what a write whose reply was lost did (see the module's comment). Resolves when the
 * write is to go on as one that got its reply; `acknowledgedFirst`: async durability.
 * @throws UNAVAILABLE without `saved` when it did not run; `outcomeUnknown` when that cannot be told.
 */
export async function confirmLostWrite(cache: DocumentCache, lost: LostWrite, acknowledgedFirst: boolean, logger: Logger, waitMs = CONFIRM_WAIT_MS): Promise<void> {
  const found = await askCache(cache, lost, waitMs);
  logger.warn({ entryKey: lost.entryKey, revision: lost.baseRevision + 1, found, err: lost.cause }, 'a document write got no reply from the cache; what it did was looked up');
  if (found === 'landed' || (found === 'unknown' && !acknowledgedFirst)) return;
  if (found === 'absent') {
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'The change was not saved: the document cache did not answer; retry shortly', { cause: lost.cause });
  }
  throw outcomeUnknown(
    `The change may or may not have been saved (as revision ${lost.baseRevision + 1}): the document cache did not answer in time; read the document before retrying`,
    lost.cause,
  );
}

/** `confirm`, tried until it is answered or `waitMs` has passed ('unreachable'). */
async function askCache(cache: DocumentCache, lost: LostWrite, waitMs: number): Promise<Confirmed | 'unreachable'> {
  const deadline = performance.now() + waitMs;
  const backoff = createBackoff(CONFIRM_RETRY);
  for (;;) {
    try {
      return await cache.confirm(lost.entryKey, lost.epoch, lost.baseRevision, lost.token);
    } catch (error) {
      if (!isDocumentCacheUnavailable(error)) throw error;
      const wait = backoff.next();
      if (performance.now() + wait > deadline) return 'unreachable';
      await pause(wait);
    }
  }
}
