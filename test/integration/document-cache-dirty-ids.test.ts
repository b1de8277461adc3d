/**
 * `DocumentCache.dirtyIds` (the unflushed ids a `documents` listing merges in async durability)
 * reads only the listed service's members of the cluster-wide dirty set: with a flush backlog of
 * another tenant, what Redis sends back is the service's own ids, not the whole set. Measured on
 * a Redis of the test's own by its `total_net_output_bytes` (nothing else talks to it).
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDocumentCache } from '../../src/pipeline/sync/document-cache.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';

const OTHERS = 100_000;

/** Bytes the Redis server has sent to its clients so far (the INFO reply itself counted once it is sent). */
async function bytesSent(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/^total_net_output_bytes:(\d+)/m.exec(info)?.[1]);
}

describe('document cache: dirtyIds', () => {
  // The tenant '*' and the prefix's brackets would be glob patterns if not escaped: the first
  // matches every tenant's entries, the second none of the service's own.
  it.each([
    ['a plain tenant', 'me', ''],
    ["a tenant '*'", '*', ''],
    ["a tenant '*' under a key prefix with glob characters", '*', '[x]?\\'],
  ])('with %s, only the service’s own members cross the wire', async (_name, tenant, prefixTail) => {
    const redisServer = await startPrivateRedis();
    const redis = new Redis(redisServer.url);
    onTestFinished(async () => void (await redis.quit()));
    const keyPrefix = `${uniquePrefix()}${prefixTail}`;
    const cache = createDocumentCache({ redis, keyPrefix, ttlMs: 60_000 });
    const dirtyKey = `${keyPrefix}doc:dirty`;

    // A flush backlog of another tenant's documents of the same service, and of this tenant's other service.
    const others: Scope = { app: 'a', env: 'e', tenant: 'someone-else' };
    for (let start = 0; start < OTHERS; start += 10_000) {
      const args: (string | number)[] = [];
      for (let index = start; index < start + 10_000; index += 1) args.push(index, cache.entryKey({ scope: others, service: 'boards', id: `doc-${index}` }));
      await redis.zadd(dirtyKey, ...args);
    }
    const mine: Scope = { app: 'a', env: 'e', tenant };
    await redis.zadd(dirtyKey, 1, cache.entryKey({ scope: mine, service: 'boards-archive', id: 'elsewhere' }));
    const own = ['plain', 'with:colon', 'with space', 'ünïcode'];
    for (const [index, id] of own.entries()) await redis.zadd(dirtyKey, OTHERS + index, cache.entryKey({ scope: mine, service: 'boards', id }));

    // The overhead of one INFO reply, to take out of the measure below.
    const first = await bytesSent(redis);
    const infoReply = (await bytesSent(redis)) - first;
    const before = await bytesSent(redis);
    const ids = await cache.dirtyIds(mine, 'boards');
    const sent = (await bytesSent(redis)) - before - infoReply;

    expect(ids.sort()).toEqual([...own].sort());
    // The whole set would be over 5 MB (100,000 members of 50+ bytes); the service's own, a few hundred bytes.
    expect(sent).toBeLessThan(2_000);
  });
});
