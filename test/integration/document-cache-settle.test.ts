/**
 * `DocumentCache.settle` after Redis restarted with its data: the entry of a change waiting for
 * Postgres may have been reloaded into the new epoch by another instance, still holding the
 * change unflushed — `moved`, pending there (its wait retries the flush, and a client is told
 * the change is saved); `lost` only when no entry holds it unflushed (only Postgres's row can
 * tell). The entry is written as the cache's scripts keep it (`ep`, `r`, `u`, `f`).
 *
 * `takeBack` of such a change (Postgres refused its content) reaches it in either entry: it refused
 * any entry of an ended epoch, so the writer was told the change was taken back while the entry
 * stayed dirty and a later flush or the sweep could still save it (once the refusal cleared). An
 * entry left in the ended epoch is deleted, so that a reload in flight cannot put the change back.
 *
 * `markFlushed` of a change whose entry was taken back meanwhile (the flush committed it while a
 * take-back, having read the row before, put the entry back): the entry, behind Postgres, is
 * deleted — kept, it served the older state, and the next change on it counted as flushed without
 * reaching Postgres.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDocumentCache } from '../../src/pipeline/sync/document-cache.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

const updatedAt = new Date('2026-12-06T12:00:00.000Z');
const change = { revision: 2, data: { v: 2 }, deleted: false, createdAt: updatedAt, updatedAt };

/** A cache of its own on the shared Redis, and the entry key of the document the tests look at. */
function openCache() {
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => void (await redis.quit()));
  const keyPrefix = uniquePrefix();
  const cache = createDocumentCache({ redis, keyPrefix, ttlMs: 60_000 });
  return { redis, keyPrefix, cache, entryKey: cache.entryKey({ scope: { app: 'a', env: 'e', tenant: 't' }, service: 'notes', id: 'n1' }) };
}

describe('document cache: settle of a change whose epoch ended', () => {
  it.each([
    ['holds it unflushed', { r: '2', u: String(updatedAt.getTime()), f: '1' }, 'moved'],
    ['holds it flushed', { r: '2', u: String(updatedAt.getTime()), f: '2' }, 'lost'],
    ['holds another change of its revision', { r: '2', u: String(updatedAt.getTime() + 1), f: '1' }, 'lost'],
    ['has moved past it', { r: '3', u: String(updatedAt.getTime() + 5), f: '1' }, 'lost'],
    ['is gone', undefined, 'lost'],
  ] as const)('answers %s in the new epoch: %s', async (_case, entry, verdict) => {
    const { redis, keyPrefix, cache, entryKey } = openCache();
    // The change was written in epoch `old`; Redis restarted and the epoch is now `new`.
    await redis.set(`${keyPrefix}doc:epoch`, 'new');
    if (entry !== undefined) await redis.hset(entryKey, { ep: 'new', ...entry });

    expect(await cache.settle(entryKey, 'old', change)).toBe(verdict);
  });
});

describe('document cache: take-back of a change whose epoch ended', () => {
  const stored = { revision: 1, data: { v: 1 }, deleted: false, createdAt: updatedAt, updatedAt: new Date(updatedAt.getTime() - 1000) };

  it.each([
    ['left in its own epoch, holding it unflushed', { ep: 'old', r: '2', u: String(updatedAt.getTime()), f: '1' }, true],
    ['reloaded into the new epoch, holding it unflushed', { ep: 'new', r: '2', u: String(updatedAt.getTime()), f: '1' }, true],
    ['holding it flushed', { ep: 'new', r: '2', u: String(updatedAt.getTime()), f: '2' }, false],
    ['holding another change of its revision', { ep: 'old', r: '2', u: String(updatedAt.getTime() + 1), f: '1' }, false],
    ['moved past it', { ep: 'new', r: '3', u: String(updatedAt.getTime() + 5), f: '1' }, false],
  ] as const)('an entry %s: taken back %s', async (_case, entry, takenBack) => {
    const { redis, keyPrefix, cache, entryKey } = openCache();
    await redis.set(`${keyPrefix}doc:epoch`, 'new');
    await redis.hset(entryKey, { ...entry, d: '{"v":2}', x: '0', c: String(updatedAt.getTime()) });
    await redis.zadd(`${keyPrefix}doc:dirty`, 1, entryKey);

    expect(await cache.takeBack(entryKey, 'old', change, stored)).toBe(takenBack);
    const after = await redis.hgetall(entryKey);
    const dirty = await redis.zscore(`${keyPrefix}doc:dirty`, entryKey);
    if (takenBack && entry.ep === 'old') {
      // Deleted: no flush or sweep writes the refused change later, and an instance reloading the
      // stale entry with the change as it read it finds it replaced (INSTALL answers 'race').
      expect({ after, dirty }).toEqual({ after: {}, dirty: null });
      const reload = await cache.install(
        { scope: { app: 'a', env: 'e', tenant: 't' }, service: 'notes', id: 'n1' },
        'new',
        'old',
        { state: change, ceiling: 0, flushed: 1, lease: '' },
      );
      expect(reload).toBe('race');
    } else if (takenBack) {
      // Back at what Postgres has, clean: no flush or sweep writes the refused change later.
      expect({ r: after['r'], d: after['d'], f: after['f'], dirty }).toEqual({ r: '1', d: '{"v":1}', f: '1', dirty: null });
    } else {
      expect({ r: after['r'], u: after['u'], f: after['f'], dirty }).toEqual({ r: entry.r, u: entry.u, f: entry.f, dirty: '1' });
    }
  });

  it('does not create an entry that is gone', async () => {
    const { redis, keyPrefix, cache, entryKey } = openCache();
    await redis.set(`${keyPrefix}doc:epoch`, 'new');

    expect(await cache.takeBack(entryKey, 'old', change, stored)).toBe(false);
    expect(await redis.exists(entryKey)).toBe(0);
  });
});

describe('document cache: a flush that committed a change taken back meanwhile', () => {
  it.each([
    ['behind the flushed revision', { r: '1', u: String(updatedAt.getTime() - 1000), f: '1' }],
    ['holding another change of the flushed revision', { r: '2', u: String(updatedAt.getTime() + 7), f: '1' }],
  ] as const)('deletes an entry %s, to be loaded again from the row', async (_case, entry) => {
    const { redis, keyPrefix, cache, entryKey } = openCache();
    await redis.set(`${keyPrefix}doc:epoch`, 'new');
    await redis.hset(entryKey, { ep: 'new', ...entry, d: '{"v":0}', x: '0', c: String(updatedAt.getTime()) });
    await redis.zadd(`${keyPrefix}doc:dirty`, 1, entryKey);

    expect(await cache.markFlushed(entryKey, 'new', 2, undefined, change)).toBe(true);
    expect(await redis.exists(entryKey)).toBe(0);
    expect(await redis.zscore(`${keyPrefix}doc:dirty`, entryKey)).toBeNull();
  });

  it('deletes a clean entry of another epoch behind the flushed revision (reloaded after a take-back deleted the one the flush read)', async () => {
    const { redis, keyPrefix, cache, entryKey } = openCache();
    await redis.set(`${keyPrefix}doc:epoch`, 'new');
    await redis.hset(entryKey, { ep: 'new', r: '1', u: String(updatedAt.getTime() - 1000), f: '1', d: '{"v":1}', x: '0', c: String(updatedAt.getTime()) });

    expect(await cache.markFlushed(entryKey, 'old', 2, undefined, change)).toBe(true);
    expect(await redis.exists(entryKey)).toBe(0);
  });

  it('marks an entry holding the flushed change clean', async () => {
    const { redis, keyPrefix, cache, entryKey } = openCache();
    await redis.set(`${keyPrefix}doc:epoch`, 'new');
    await redis.hset(entryKey, { ep: 'new', r: '2', u: String(updatedAt.getTime()), f: '1', d: '{"v":2}', x: '0', c: String(updatedAt.getTime()) });
    await redis.zadd(`${keyPrefix}doc:dirty`, 1, entryKey);

    expect(await cache.markFlushed(entryKey, 'new', 2, undefined, change)).toBe(true);
    expect(await redis.hget(entryKey, 'f')).toBe('2');
    expect(await redis.zscore(`${keyPrefix}doc:dirty`, entryKey)).toBeNull();
  });
});
