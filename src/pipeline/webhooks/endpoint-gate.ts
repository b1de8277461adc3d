/**
 * Each endpoint's own limits — attempts in flight and attempts started per second — so a slow or
 * failing endpoint occupies at most its share of the workers and never delays another. Shared
 * through Redis by every worker process (a sorted set of leases, rate-limiter-flexible's Redis
 * limiter), or kept in memory in the embedded mode.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { defineScript } from '../redis-script.ts';

export interface GatedEndpoint {
  readonly id: string;
  readonly maxConcurrency: number;
  readonly rateLimitPerSecond: number | null;
}

export type GateAnswer = { readonly ok: true; release(): Promise<void> } | { readonly ok: false; readonly retryInMs: number };

export interface EndpointGate {
  /** A slot for one attempt, or how long to wait before asking again. */
  acquire(endpoint: GatedEndpoint): Promise<GateAnswer>;
}

/** When an endpoint is at its concurrency, ask again after about this long, in ms. */
const BUSY_RETRY_MS = 250;

/** Rate limiters by rate: every endpoint with the same rate shares one (keys are per endpoint). */
function limiters(make: (points: number) => RateLimiterAbstract): (rate: number) => RateLimiterAbstract {
  const byRate = new Map<number, RateLimiterAbstract>();
  return (rate) => {
    let limiter = byRate.get(rate);
    if (!limiter) byRate.set(rate, (limiter = make(rate)));
    return limiter;
  };
}

async function withinRate(limiter: RateLimiterAbstract | undefined, key: string): Promise<number> {
  if (!limiter) return 0;
  try {
    await limiter.consume(key);
    return 0;
  } catch (error) {
    if (error instanceof RateLimiterRes) return Math.max(1, error.msBeforeNext);
    throw error;
  }
}

export function createMemoryGate(): EndpointGate {
  const inFlight = new Map<string, number>();
  const limiterOf = limiters((points) => new RateLimiterMemory({ points, duration: 1 }));
  return {
    async acquire(endpoint) {
      if ((inFlight.get(endpoint.id) ?? 0) >= endpoint.maxConcurrency) return { ok: false, retryInMs: BUSY_RETRY_MS };
      const wait = await withinRate(endpoint.rateLimitPerSecond === null ? undefined : limiterOf(endpoint.rateLimitPerSecond), endpoint.id);
      if (wait > 0) return { ok: false, retryInMs: wait };
      // Checked again with no await before taking the slot: another acquire may have taken it meanwhile.
      const busy = inFlight.get(endpoint.id) ?? 0;
      if (busy >= endpoint.maxConcurrency) return { ok: false, retryInMs: BUSY_RETRY_MS };
      inFlight.set(endpoint.id, busy + 1);
      let released = false;
      return {
        ok: true,
        release() {
          if (!released) {
            released = true;
            const left = (inFlight.get(endpoint.id) ?? 1) - 1;
            if (left <= 0) inFlight.delete(endpoint.id);
            else inFlight.set(endpoint.id, left);
          }
          return Promise.resolve();
        },
      };
    },
  };
}

type LeaseScript = (key: string, now: number, leaseMs: number, max: number, token: string) => Promise<number>;

/** Expired leases (a worker died mid-attempt) drop out; a lease is taken only below the endpoint's maximum. */
const TAKE_LEASE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

export function createRedisGate(options: { readonly redis: Redis; readonly keyPrefix: string; readonly leaseMs: number }): EndpointGate {
  const { redis, keyPrefix, leaseMs } = options;
  const takeLease = defineScript<LeaseScript>(redis, 'tributaryWebhookLease', 1, TAKE_LEASE);
  const limiterOf = limiters((points) => new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keyPrefix}webhook:rate:${points}`, points, duration: 1 }));
  return {
    async acquire(endpoint) {
      const key = `${keyPrefix}webhook:inflight:${endpoint.id}`;
      const token = randomUUID();
      if ((await takeLease(key, Date.now(), leaseMs, endpoint.maxConcurrency, token)) !== 1) return { ok: false, retryInMs: BUSY_RETRY_MS };
      const wait = await withinRate(endpoint.rateLimitPerSecond === null ? undefined : limiterOf(endpoint.rateLimitPerSecond), endpoint.id);
      if (wait > 0) {
        await redis.zrem(key, token);
        return { ok: false, retryInMs: wait };
      }
      return {
        ok: true,
        async release() {
          await redis.zrem(key, token);
        },
      };
    },
  };
}
