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

/**
 * A slot, or how long to wait. `release` gives the slot back: the gate counts it free for every
 * later acquire of its own (this process's) from the call on, whether or not its promise has
 * settled yet; other processes' gates, once it has.
 */
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

type GateScript = (key: string, now: number, leaseMs: number, max: number, givenBack: number, ...tokens: string[]) => Promise<number>;

/**
 * Gives back the leases of the first ARGV[4] tokens of ARGV[5…], then takes leases for the others,
 * as many as the endpoint's maximum (ARGV[3]) leaves room for, in order; expired leases (a worker
 * died mid-attempt) drop out first. Returns how many were taken.
 */
const GIVE_AND_TAKE = `
local given = tonumber(ARGV[4])
if given > 0 then redis.call('ZREM', KEYS[1], unpack(ARGV, 5, 4 + given)) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local room = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local taken = 0
for i = 5 + given, #ARGV do
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

/** A lease asked for (`endpoint`), or one given back (`endpointId` only). */
type LeaseRequest = { readonly endpointId: string; readonly token: string; readonly endpoint?: GatedEndpoint };

export function createRedisGate(options: { readonly redis: Redis; readonly keyPrefix: string; readonly leaseMs: number }): EndpointGate {
  const { redis, keyPrefix, leaseMs } = options;
  const giveAndTake = defineScript<GateScript>(redis, 'tributaryWebhookGate', 1, GIVE_AND_TAKE);
  const limiterOf = limiters((points) => new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keyPrefix}webhook:rate:${points}`, points, duration: 1 }));
  const keyOf = (endpointId: string) => `${keyPrefix}webhook:inflight:${endpointId}`;
  /**
   * Leases asked for and given back go through one queue, a script call per endpoint for a batch:
   * a lease given back is gone before any lease asked for after it is looked at — so an attempt's
   * place is free for the next one without waiting for Redis to answer the release.
   */
  const leases = createGroupCommit<LeaseRequest, boolean>({
    async write(requests) {
      const granted = requests.map(() => false);
      const now = Date.now();
      // Every endpoint's script is waited for, also when one fails: the batch settles once Redis has answered them all.
      const settled = await Promise.allSettled(
        [...groupBy(requests, (request) => request.endpointId)].map(async ([endpointId, group]) => {
          const given = group.filter(({ item }) => item.endpoint === undefined);
          const asked = group.filter(({ item }) => item.endpoint !== undefined);
          const max = asked[0]?.item.endpoint?.maxConcurrency ?? 0;
          const taken = await giveAndTake(keyOf(endpointId), now, leaseMs, max, given.length, ...given.map(({ item }) => item.token), ...asked.map(({ item }) => item.token));
          for (const { index } of asked.slice(0, taken)) granted[index] = true;
        }),
      );
      const failed = settled.find((outcome) => outcome.status === 'rejected');
      if (failed) throw failed.reason;
      return granted;
    },
    maxBatch: GATE_BATCH,
  });
  return {
    async acquire(endpoint) {
      const token = randomUUID();
      if (!(await leases.submit({ endpointId: endpoint.id, token, endpoint }))) return { ok: false, retryInMs: BUSY_RETRY_MS };
      const release = async () => void (await leases.submit({ endpointId: endpoint.id, token }));
      const wait = await withinRate(endpoint.rateLimitPerSecond === null ? undefined : limiterOf(endpoint.rateLimitPerSecond), endpoint.id).catch(async (error: unknown) => {
        // The lease would hold one of the endpoint's places until it runs out.
        await release().catch(() => undefined);
        throw error;
      });
      if (wait > 0) {
        // The answer is "wait" either way: a release that fails leaves a lease that runs out.
        await release().catch(() => undefined);
        return { ok: false, retryInMs: wait };
      }
      return { ok: true, release };
    },
  };
}
