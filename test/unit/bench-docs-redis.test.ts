import { describe, expect, it } from 'vitest';
import { redisOf } from '../../bench/workloads/docs.ts';
import type { RedisInstance } from '../helpers/redis.ts';

/** Only its identity matters here: the session reads the CPU of whichever instance it is handed. */
const redis = { url: 'redis://127.0.0.1:6390', port: 6390, pid: 4242 } as RedisInstance;

describe('bench docs workload', () => {
  it('counts redis-server’s CPU with the peers that keep documents in it, and with no other', () => {
    expect(redisOf('tributary-redis', redis)).toBe(redis);
    expect(redisOf('tributary-redis-async', redis)).toBe(redis);
    for (const name of ['tributary', 'yoga-graphql-ws'] as const) expect(redisOf(name, redis)).toBeUndefined();
  });
});
