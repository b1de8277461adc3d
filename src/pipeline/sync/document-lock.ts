import { randomUUID } from 'node:crypto';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { DocumentCache } from './document-cache.ts';

/**
 * A document's write lock in Redis (`DocumentCache.tryLock`), across instances: writers take turns
 * from the revision check to the published event, and the sweep of unpublished events publishes a
 * document's under it (`republisher.ts`).
 */

/** Lifetime of a document's write lock: how long a dead holder blocks the document. */
export const LOCK_TTL_MS = 3000;
/** Retries of a taken lock: soon at first (a write holds it for milliseconds), then every 50 ms. */
const LOCK_RETRY = { initialMs: 1, maxMs: 50 };

/**
 * Takes the document's lock in Redis, so that writers on every instance take turns from the
 * revision check to the published event. A holder that dies loses the lock after LOCK_TTL_MS —
 * and so does one that is still working then: the lock is not extended, so that a hung write
 * blocks its document for LOCK_TTL_MS at most (ordering across instances is best effort; see
 * `cached-documents.ts`). @throws UNAVAILABLE when `deadline` (performance.now() time) passes first.
 */
export async function withDocumentLock<T>(cache: DocumentCache, entryKey: string, deadline: number, logger: Logger, work: () => Promise<T>): Promise<T> {
  const token = randomUUID();
  const backoff = createBackoff(LOCK_RETRY);
  while (!(await cache.tryLock(entryKey, token, LOCK_TTL_MS))) {
    if (performance.now() > deadline) throw contention();
    await pause(backoff.next());
  }
  try {
    return await work();
  } finally {
    await cache.unlock(entryKey, token).catch((error: unknown) => logger.warn({ err: error }, 'document lock not released; it expires'));
  }
}

/** Runs `work` under the document's lock if it is free now; answers false, running nothing, when another holds it. */
export async function tryDocumentLock(cache: DocumentCache, entryKey: string, logger: Logger, work: () => Promise<void>): Promise<boolean> {
  const token = randomUUID();
  if (!(await cache.tryLock(entryKey, token, LOCK_TTL_MS))) return false;
  try {
    await work();
  } finally {
    await cache.unlock(entryKey, token).catch((error: unknown) => logger.warn({ err: error }, 'document lock not released; it expires'));
  }
  return true;
}

export function contention(): TributaryError {
  return new TributaryError(ErrorCode.UNAVAILABLE, 'The document is being written by many writers at once; retry shortly');
}
