import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { CacheLease, CachedEntry, DocumentCache } from './document-cache.ts';
import { raiseCeiling, releaseCeilings, stateOf, type DocumentRow, type StoredKey } from './document-store.ts';
import type { DocumentState } from './document-writes.ts';
import type { DocumentKey } from './documents.ts';

/**
 * Ceilings: how the cache acknowledges writes before Postgres has them (async durability) without
 * ever giving one revision number to two contents.
 *
 * Postgres keeps, per document, a ceiling granted to a cache lease (`epoch.generation`, in
 * `sync_documents.cache_epoch`). The cache acknowledges a revision ahead of Postgres only under a
 * ceiling of its current lease, so a ceiling above the stored revision is the only sign that the
 * cache may hold acknowledged changes Postgres lacks:
 * - a document loaded into a new epoch (Redis lost its data or restarted) resumes above such a
 *   ceiling, with the last data Postgres has (`reconcile`);
 * - a graceful shutdown flushes what is dirty, renews the lease generation (voiding every entry's
 *   ceiling at once, in Redis) and gives the old generation's ceilings back (`releaseLeases`), so
 *   those documents keep their revisions whatever happens to Redis next;
 * - writes in sync durability are acknowledged only after Postgres has them: they need no ceiling,
 *   and flushes grant none, so their documents never move.
 */

/** How a lease is recorded in Postgres (`sync_documents.cache_epoch`): `epoch.generation`. */
export function leaseId(lease: CacheLease): string {
  return `${lease.epoch}.${lease.generation}`;
}

/** The inverse of `leaseId`; rows written before lease generations hold the epoch alone. */
export function parseLeaseId(text: string): CacheLease {
  const dot = text.indexOf('.');
  return dot < 0 ? { epoch: text, generation: '' } : { epoch: text.slice(0, dot), generation: text.slice(dot + 1) };
}

/**
 * The entry to install for a document that is not in the cache (or is, from an older epoch):
 * the newer of Postgres's row and the stale entry, moved above the stored ceiling when revisions up
 * to it may have been acknowledged by a cache that has since lost them.
 */
export function reconcile(row: DocumentRow | undefined, stale: CachedEntry | undefined, current: CacheLease): Omit<CachedEntry, 'epoch'> {
  const stored: DocumentState = row ? stateOf(row) : { revision: 0, data: {}, deleted: true, createdAt: new Date(0), updatedAt: new Date(0) };
  const flushed = stored.revision;
  const ceiling = row?.ceiling ?? 0;
  const base = stale && stale.state.revision > stored.revision ? stale.state : stored;
  const granted = row?.cache_epoch ? parseLeaseId(row.cache_epoch) : undefined;
  if (granted === undefined || granted.epoch === current.epoch || ceiling <= base.revision) {
    // The row's ceiling stays usable only if it was granted to this epoch's current generation.
    const lease = granted?.epoch === current.epoch ? granted.generation : '';
    return { state: base, ceiling: Math.max(ceiling, base.revision), lease, flushed };
  }
  // A new revision above anything acknowledged before, with the last state known to survive.
  return { state: { ...base, revision: ceiling + 1, updatedAt: new Date() }, ceiling, lease: '', flushed };
}

/**
 * Asks Postgres for a ceiling `headroom` past the revision it has, under the current lease, and
 * gives it to the entry; answers it. Never past that: it is what bounds the acknowledged changes
 * Postgres lacks.
 */
export async function extendCeiling(db: Database, cache: DocumentCache, key: DocumentKey, lease: CacheLease, headroom: number): Promise<number> {
  const ceiling = await raiseCeiling(db, key, headroom, leaseId(lease));
  await cache.raiseCeiling(cache.entryKey(key), lease, ceiling);
  return ceiling;
}

/** Dirty entries `releaseLeases` looks at, at most; with more, it keeps every ceiling. */
const RELEASE_DIRTY_LIMIT = 10_000;

/**
 * Ends the current lease generation and gives its ceilings back, except those of documents still
 * dirty in the cache (their acknowledged changes are not in Postgres yet). Call after flushing.
 * Best effort: a failure leaves ceilings in place (documents may then jump after a Redis loss).
 */
export async function releaseLeases(db: Database, cache: DocumentCache, logger: Logger): Promise<void> {
  try {
    const ended = await cache.renewLease();
    if (!ended) return;
    const dirty = await cache.dirtySince(0, RELEASE_DIRTY_LIMIT + 1);
    if (dirty.length > RELEASE_DIRTY_LIMIT) {
      logger.warn({ dirty: dirty.length }, 'too many dirty documents to give their ceilings back; they stay granted');
      return;
    }
    const keep: StoredKey[] = [];
    for (const entryKey of dirty) {
      const found = await cache.dirtyEntry(entryKey);
      if (found) keep.push(found.key);
    }
    const released = await releaseCeilings(db, leaseId(ended), keep);
    logger.debug({ released, kept: keep.length }, 'document ceilings given back');
  } catch (error) {
    logger.warn({ err: error }, 'document ceilings not given back; those documents resume above them if Redis loses its data');
  }
}
