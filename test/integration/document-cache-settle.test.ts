/**
 * `DocumentCache.settle` after Redis restarted with its data: the entry of a change waiting for
 * Postgres may have been reloaded into the new epoch by another instance, still holding the
 * change unflushed — `moved`, pending there (its wait retries the flush, and a client is told
 * the change is saved); `lost` only when no entry holds it unflushed (only Postgres's row can
 * tell). The entry is written as the cache's scripts keep it (`ep`, `r`, `u`, `f`).
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDocumentCache } from '../../src/pipeline/sync/document-cache.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

const updatedAt = new Date('2026-12-06T12:00:00.000Z');
const change = { revision: 2, data: { v: 2 }, deleted: false, createdAt: updatedAt, updatedAt };

describe('document cache: settle of a change whose epoch ended', () => {
  it.each([
    ['holds it unflushed', { r: '2', u: String(updatedAt.getTime()), f: '1' }, 'moved'],
    ['holds it flushed', { r: '2', u: String(updatedAt.getTime()), f: '2' }, 'lost'],
    ['holds another change of its revision', { r: '2', u: String(updatedAt.getTime() + 1), f: '1' }, 'lost'],
    ['has moved past it', { r: '3', u: String(updatedAt.getTime() + 5), f: '1' }, 'lost'],
    ['is gone', undefined, 'lost'],
  ] as const)('answers %s in the new epoch: %s', async (_case, entry, verdict) => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    const keyPrefix = uniquePrefix();
    const cache = createDocumentCache({ redis, keyPrefix, ttlMs: 60_000 });
    const entryKey = cache.entryKey({ scope: { app: 'a', env: 'e', tenant: 't' }, service: 'notes', id: 'n1' });
    // The change was written in epoch `old`; Redis restarted and the epoch is now `new`.
    await redis.set(`${keyPrefix}doc:epoch`, 'new');
    if (entry !== undefined) await redis.hset(entryKey, { ep: 'new', ...entry });

    expect(await cache.settle(entryKey, 'old', change)).toBe(verdict);
  });
});
