/**
 * The sweep that writes dirty cache entries to Postgres serves the whole cluster's dirty set, every
 * tenant's. An entry the database refuses (here: data holding a NUL, which jsonb cannot store —
 * the edge refuses it now, but an entry may predate that, and other refusals exist) used to end
 * every pass at the head of the set, so no dirty document after it was ever written back, not
 * even at a graceful shutdown. Now the pass goes on past any number of them, retries them at
 * every pass, and logs each at most once per FAILING_LOG_INTERVAL_MS.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createDocumentCache } from '../../src/pipeline/sync/document-cache.ts';
import { createDocumentFlusher, FAILING_LOG_INTERVAL_MS } from '../../src/pipeline/sync/document-flusher.ts';
import type { DocumentKey, JsonObject } from '../../src/pipeline/sync/documents.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';

/** Entries a pass takes at a time; more are refused, so the good ones are only reached past a full batch of refused ones. */
const BATCH = 2;
const REFUSED = 3;

describe('the dirty document sweep', () => {
  it('writes every other dirty document past those the database refuses, and logs each refused one once per interval', async () => {
    const database = await createTestDatabase();
    const quiet = createLogger({ level: 'silent' });
    const db = createPostgresDatabase({ url: database.url, logger: quiet });
    onTestFinished(() => db.close());
    await migrate(db, { logger: quiet });
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    const prefix = uniquePrefix();
    const cache = createDocumentCache({ redis, keyPrefix: prefix, ttlMs: 60_000 });
    const logs = captureLogs();
    let clock = 0;
    const flusher = createDocumentFlusher({
      db,
      cache,
      logger: createLogger({ level: 'warn', destination: logs }),
      ceilingHeadroom: 0,
      compareAndSet: true,
      // Only the sweeps the test runs.
      sweepIntervalMs: 3_600_000,
      sweepBatch: BATCH,
      now: () => clock,
    });
    onTestFinished(() => flusher.close());

    const { epoch } = await cache.lease();
    const at = new Date('2026-01-01T00:00:00Z');
    const dirty = async (tenant: string, id: string, data: JsonObject): Promise<string> => {
      const key: DocumentKey = { scope: { app: 'a', env: 'e', tenant }, service: 'board', id };
      expect(await cache.install(key, epoch, undefined, { state: { revision: 1, data, deleted: false, createdAt: at, updatedAt: at }, ceiling: 1, lease: '', flushed: 0 })).toBe('ok');
      return cache.entryKey(key);
    };
    const refused: string[] = [];
    for (let index = 0; index < REFUSED; index += 1) refused.push(await dirty('poisoned', `p${index}`, { text: `a\u0000${index}` }));
    for (const tenant of ['t1', 't2', 't3']) await dirty(tenant, 'doc', { ok: tenant });
    // The refused entries at the head of the set (it is ordered by when each became dirty).
    await redis.zadd(`${prefix}doc:dirty`, ...refused.flatMap((entryKey, index) => [index, entryKey]));

    expect(await flusher.sweep(0)).toBe(3);
    const { rows } = await db.query<{ tenant: string; revision: number; data: unknown }>('SELECT tenant, revision, data FROM sync_documents ORDER BY tenant');
    expect(rows).toEqual(['t1', 't2', 't3'].map((tenant) => ({ tenant, revision: 1, data: { ok: tenant } })));
    // The refused ones stay dirty, kept for the next sweeps.
    expect((await redis.zrange(`${prefix}doc:dirty`, 0, -1)).sort()).toEqual([...refused].sort());

    const logged = () => logs.lines.filter((line) => line.level >= 50).map((line) => line['entryKey']);
    expect(logged().sort()).toEqual([...refused].sort());
    expect(logs.lines.find((line) => line.level >= 50)).toMatchObject({ err: { message: 'unsupported Unicode escape sequence' } });

    // Retried at every pass, not logged again within the interval…
    expect(await flusher.sweep(0)).toBe(0);
    clock += FAILING_LOG_INTERVAL_MS - 1;
    expect(await flusher.sweep(0)).toBe(0);
    expect(logged()).toHaveLength(REFUSED);
    // …and once more after it.
    clock += 1;
    expect(await flusher.sweep(0)).toBe(0);
    expect(logged()).toHaveLength(2 * REFUSED);
    expect(await redis.zcard(`${prefix}doc:dirty`)).toBe(REFUSED);
  });
});
