/**
 * Each endpoint's own limits — attempts in flight and attempts started per second — so a slow or
 * failing endpoint occupies at most its share of the workers and never delays another. Shared
 * through Redis by every worker process (a sorted set of leases per endpoint, taken and given back
 * in batches; rate-limiter-flexible's Redis limiter), or kept in memory in the embedded mode.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { createGroupCommit } from '../coordination/group-commit.ts';
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

type LeaseScript = (key: string, now: number, leaseMs: number, max: number, ...tokens: string[]) => Promise<number>;

/**
 * Leases for the tokens in ARGV[4…], as many as the endpoint's maximum leaves room for, in order;
 * expired leases (a worker died mid-attempt) drop out first. Returns how many were taken.
 */
const TAKE_LEASES = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local room = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local taken = 0
for i = 4, #ARGV do
  if taken >= room then break end
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[i])
  taken = taken + 1
end
if taken > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return taken`;

/** Leases asked for or given back in one batch at most. */
const GATE_BATCH = 500;

/** `items` grouped by `keyOf`, each group in the items' order, with each item's index. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, { item: T; index: number }[]> {
  const groups = new Map<string, { item: T; index: number }[]>();
  items.forEach((item, index) => {
    const key = keyOf(item);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push({ item, index });
  });
  return groups;
}

export function createRedisGate(options: { readonly redis: Redis; readonly keyPrefix: string; readonly leaseMs: number }): EndpointGate {
  const { redis, keyPrefix, leaseMs } = options;
  const takeLeases = defineScript<LeaseScript>(redis, 'tributaryWebhookLeases', 1, TAKE_LEASES);
  const limiterOf = limiters((points) => new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keyPrefix}webhook:rate:${points}`, points, duration: 1 }));
  const keyOf = (endpointId: string) => `${keyPrefix}webhook:inflight:${endpointId}`;
  // Attempts starting or ending together ask Redis together: one script call (or ZREM) per endpoint for all of them.
  const leases = createGroupCommit<{ endpoint: GatedEndpoint; token: string }, boolean>({
    async write(requests) {
      const granted = requests.map(() => false);
      const now = Date.now();
      await Promise.all(
        [...groupBy(requests, (request) => request.endpoint.id)].map(async ([endpointId, group]) => {
          const taken = await takeLeases(keyOf(endpointId), now, leaseMs, group[0]!.item.endpoint.maxConcurrency, ...group.map(({ item }) => item.token));
          for (const { index } of group.slice(0, taken)) granted[index] = true;
        }),
      );
      return granted;
    },
    maxBatch: GATE_BATCH,
  });
  const releases = createGroupCommit<{ endpointId: string; token: string }, void>({
    async write(returned) {
      await Promise.all([...groupBy(returned, (lease) => lease.endpointId)].map(([endpointId, group]) => redis.zrem(keyOf(endpointId), ...group.map(({ item }) => item.token))));
      return returned.map(() => undefined);
    },
    maxBatch: GATE_BATCH,
  });
  return {
    async acquire(endpoint) {
      const token = randomUUID();
      if (!(await leases.submit({ endpoint, token }))) return { ok: false, retryInMs: BUSY_RETRY_MS };
      const release = () => releases.submit({ endpointId: endpoint.id, token });
      const wait = await withinRate(endpoint.rateLimitPerSecond === null ? undefined : limiterOf(endpoint.rateLimitPerSecond), endpoint.id).catch(async (error: unknown) => {
        // The lease would hold one of the endpoint's places until it runs out.
        await release().catch(() => undefined);
        throw error;
      });
      if (wait > 0) {
        await release();
        return { ok: false, retryInMs: wait };
      }
      return { ok: true, release };
    },
  };
}
