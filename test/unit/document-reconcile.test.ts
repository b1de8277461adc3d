import { describe, expect, it } from 'vitest';
import type { CacheLease, CachedEntry } from '../../src/pipeline/sync/document-cache.ts';
import { leaseId, parseLeaseId, reconcile } from '../../src/pipeline/sync/document-leases.ts';

const at = new Date('2026-01-01T00:00:00Z');
const row = (revision: number, ceiling: number, cacheEpoch: string | null, data: Record<string, unknown> = { r: revision }) => ({
  id: 'd',
  revision,
  data,
  deleted: false,
  created_at: at,
  updated_at: at,
  ceiling,
  cache_epoch: cacheEpoch,
});
const staleEntry = (revision: number, epoch = 'old'): CachedEntry => ({
  epoch,
  state: { revision, data: { stale: revision }, deleted: false, createdAt: at, updatedAt: at },
  ceiling: revision,
  lease: '',
  flushed: 0,
});
/** The current cache: epoch `now`, lease generation `g2`. */
const now: CacheLease = { epoch: 'now', generation: 'g2' };

describe('reconcile: the entry a document gets when it is loaded into the cache', () => {
  it('takes the stored row as it is when the ceiling was raised by this cache epoch (a clean expiry)', () => {
    expect(reconcile(row(5, 69, 'now.g2'), undefined, now)).toMatchObject({ state: { revision: 5, data: { r: 5 } }, ceiling: 69, lease: 'g2', flushed: 5 });
  });

  it('keeps the generation a ceiling was granted under, so that one of an ended generation stays void', () => {
    expect(reconcile(row(5, 69, 'now.g1'), undefined, now)).toMatchObject({ state: { revision: 5 }, ceiling: 69, lease: 'g1' });
  });

  it('keeps the revision of a document whose ceiling was given back, or never raised, in another epoch', () => {
    // A graceful shutdown gave the ceiling back; sync durability never raises it past the revision.
    expect(reconcile(row(5, 5, 'old.g1'), undefined, now)).toMatchObject({ state: { revision: 5, data: { r: 5 } }, ceiling: 5, lease: '', flushed: 5 });
  });

  it('takes rows written without a cache (no epoch) as they are', () => {
    expect(reconcile(row(5, 0, null), undefined, now)).toMatchObject({ state: { revision: 5 }, ceiling: 5, flushed: 5 });
  });

  it('resumes above the ceiling, with the stored data, when another epoch may have acknowledged more', () => {
    const entry = reconcile(row(5, 69, 'old'), undefined, now);
    expect(entry.state).toMatchObject({ revision: 70, data: { r: 5 } });
    // Dirty (flushed 5 < 70) and at its ceiling: the next write must raise it in Postgres first.
    expect(entry).toMatchObject({ ceiling: 69, lease: '', flushed: 5 });
  });

  it('keeps a stale entry newer than the row (a restored snapshot) and still resumes above the ceiling', () => {
    const entry = reconcile(row(5, 69, 'old.g1'), staleEntry(9), now);
    expect(entry.state).toMatchObject({ revision: 70, data: { stale: 9 } });
  });

  it('prefers the row over a stale entry that is behind it', () => {
    expect(reconcile(row(12, 12, null), staleEntry(9), now).state).toMatchObject({ revision: 12, data: { r: 12 } });
  });

  it('starts a document Postgres has never seen as a tombstone at revision 0 with no ceiling', () => {
    expect(reconcile(undefined, undefined, now)).toMatchObject({ state: { revision: 0, deleted: true }, ceiling: 0, flushed: 0 });
  });
});

describe('lease ids: how a ceiling records the cache lease it was granted under', () => {
  it('round-trips epoch and generation, and reads a row written before generations as the epoch alone', () => {
    expect(parseLeaseId(leaseId({ epoch: 'Ab-_9', generation: 'x_Y-2' }))).toEqual({ epoch: 'Ab-_9', generation: 'x_Y-2' });
    expect(parseLeaseId('Ab-_9')).toEqual({ epoch: 'Ab-_9', generation: '' });
    expect(parseLeaseId('Ab-_9.')).toEqual({ epoch: 'Ab-_9', generation: '' });
  });
});
