/**
 * The endpoint gate shared by every worker process through Redis: a sorted set of leases per
 * endpoint, taken and given back in batches (one script call per endpoint and batch), and
 * rate-limiter-flexible's Redis limiter for `rateLimitPerSecond`.
 *
 * A lease given back is kept a moment (`KEEP_MS`) for the next acquire of the same endpoint in the
 * same process, which takes it without a round trip: while an endpoint has work, its leases go from
 * one attempt to the next here for up to `REUSE_MS`, then through Redis again (given back and asked
 * for anew in one script call, as every lease was before), and back to Redis once idle `KEEP_MS`.
 * So while a process keeps an endpoint busy it keeps its places: another process's attempts to
 * that endpoint are refused (and wait `BUSY_RETRY_MS`) until some of them are idle.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import type { Logger } from '../../logger.ts';
import { createGroupCommit } from '../coordination/group-commit.ts';
import { defineScript } from '../redis-script.ts';
import { BUSY_RETRY_MS, limiters, withinRate, type EndpointGate, type GatedEndpoint } from './endpoint-gate.ts';

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

/** What Redis answered a request: the maxConcurrency an ask was granted under (undefined: refused, or a give-back done), or its script's error. */
type LeaseAnswer = number | undefined | { readonly failed: unknown };

/**
 * How long a Redis lease given back is kept for the next acquire of its endpoint in this process,
 * in ms. Long enough for an endpoint sent to every few ms (1,000 events/s over 10 endpoints: one
 * each 10 ms); short enough that the leases of an endpoint idle here soon serve the other processes.
 */
export const KEEP_MS = 50;

/**
 * How long a lease goes from attempt to attempt in this process before it goes through Redis again,
 * in ms: what a Redis restarted without its data may let the endpoint's limit lag behind by, on top
 * of the attempts under way; far within any lease (two attempts' timeouts and 5 s).
 */
export const REUSE_MS = 1_000;

/** A lease this gate holds: its token, what it was granted under, and who waits for its release. */
interface HeldLease {
  readonly token: string;
  /** When Redis granted it (ms, the gate's monotonic clock). */
  readonly grantedAt: number;
  /** The maxConcurrency Redis granted it under (a lowered one makes it go back). */
  readonly grantedMax: number;
  /** Settles the `release` promises of its holders not yet told (earlier ones were, when it was handed on). */
  readonly onReleased: (() => void)[];
  /** When it was given back and kept (ms, the gate's monotonic clock). */
  keptAt: number;
}

export interface RedisGateOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** How long a lease lasts when its holder dies without giving it back, in ms: more than `REUSE_MS` and an attempt. */
  readonly leaseMs: number;
  /** Told of a lease Redis could not take back (it runs out by itself). */
  readonly logger?: Pick<Logger, 'warn'>;
  /** The monotonic clock leases are kept and reused on, in ms. @default performance.now */
  readonly now?: () => number;
}

export function createRedisGate(options: RedisGateOptions): EndpointGate {
  const { redis, keyPrefix, leaseMs } = options;
  const now = options.now ?? (() => performance.now());
  const giveAndTake = defineScript<GateScript>(redis, 'tributaryWebhookGate', 1, GIVE_AND_TAKE);
  const limiterOf = limiters((points) => new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keyPrefix}webhook:rate:${points}`, points, duration: 1 }));
  const keyOf = (endpointId: string) => `${keyPrefix}webhook:inflight:${endpointId}`;
  /**
   * Leases asked for and given back go through one queue, a script call per endpoint for a batch:
   * a lease given back is gone before any lease asked for after it is looked at. A lease's score is
   * when it runs out, on the wall clock (`Date.now()`): every process's gate compares them. A
   * script that fails fails its endpoint's requests only: another endpoint's asks in the batch
   * were taken in Redis, and failed too they would hold its places with no one to give them back.
   */
  const leases = createGroupCommit<LeaseRequest, LeaseAnswer>({
    async write(requests) {
      const answers: LeaseAnswer[] = requests.map(() => undefined);
      const wallNow = Date.now();
      await Promise.all(
        [...groupBy(requests, (request) => request.endpointId)].map(async ([endpointId, group]) => {
          const given = group.filter(({ item }) => item.endpoint === undefined);
          const asked = group.filter(({ item }) => item.endpoint !== undefined);
          // Asks read from the endpoint at different moments may disagree: the lowest holds.
          const max = asked.length === 0 ? 0 : Math.min(...asked.map(({ item }) => item.endpoint?.maxConcurrency ?? 0));
          try {
            const taken = await giveAndTake(keyOf(endpointId), wallNow, leaseMs, max, given.length, ...given.map(({ item }) => item.token), ...asked.map(({ item }) => item.token));
            for (const { index } of asked.slice(0, taken)) answers[index] = max;
          } catch (error) {
            for (const { index } of group) answers[index] = { failed: error };
          }
        }),
      );
      return answers;
    },
    maxBatch: GATE_BATCH,
  });
  /** Sends a request with the next batch: the maxConcurrency an ask was granted under, or undefined; throws its endpoint's error. */
  const submit = async (request: LeaseRequest): Promise<number | undefined> => {
    const answer = await leases.submit(request);
    if (typeof answer === 'object') throw answer.failed;
    return answer;
  };

  /** Leases given back and kept, by endpoint, the latest last; and the attempts each endpoint has under way here. */
  const kept = new Map<string, HeldLease[]>();
  const inUse = new Map<string, number>();
  const countInUse = (endpointId: string, by: number) => {
    const count = (inUse.get(endpointId) ?? 0) + by;
    if (count > 0) inUse.set(endpointId, count);
    else inUse.delete(endpointId);
  };
  /** Set by `close`: a lease released after it goes straight back to Redis. */
  let closed = false;
  /** Releases sent to Redis and not answered yet: what `close` waits for. */
  const givingBack = new Set<Promise<void>>();
  /** Gives the lease back to Redis; settles once Redis has answered, also when it failed (the lease then runs out). */
  const giveBack = (endpointId: string, lease: HeldLease): Promise<void> => {
    const given = submit({ endpointId, token: lease.token }).then(
      () => undefined,
      (error: unknown) => options.logger?.warn({ err: error, endpoint: endpointId }, 'webhook gate lease not given back; it runs out'),
    );
    givingBack.add(given);
    void given.finally(() => {
      givingBack.delete(given);
      for (const settle of lease.onReleased) settle();
    });
    return given;
  };
  let timer: NodeJS.Timeout | undefined;
  /** Gives back the leases kept `KEEP_MS` (all, with `everything`), and waits for the next to be due. */
  const sweep = (everything: boolean) => {
    timer = undefined;
    const at = now();
    let next = Number.POSITIVE_INFINITY;
    for (const [endpointId, list] of kept) {
      const staying = everything ? [] : list.filter((lease) => at - lease.keptAt < KEEP_MS);
      for (const lease of list) if (!staying.includes(lease)) void giveBack(endpointId, lease);
      if (staying.length === 0) kept.delete(endpointId);
      else kept.set(endpointId, staying);
      for (const lease of staying) next = Math.min(next, lease.keptAt + KEEP_MS);
    }
    if (next !== Number.POSITIVE_INFINITY) {
      timer = setTimeout(() => sweep(false), Math.max(1, next - at));
      timer.unref();
    }
  };
  const keep = (endpointId: string, lease: HeldLease) => {
    if (closed) {
      void giveBack(endpointId, lease);
      return;
    }
    lease.keptAt = now();
    const list = kept.get(endpointId);
    if (list) list.push(lease);
    else kept.set(endpointId, [lease]);
    if (timer === undefined) {
      timer = setTimeout(() => sweep(false), KEEP_MS);
      timer.unref();
    }
  };
  /**
   * A kept lease of the endpoint younger than `REUSE_MS`, granted under a maxConcurrency no higher
   * than the endpoint's now, with the endpoint below it here; or none. Each kept lease passed over
   * is given back (the next comes from Redis, which sees every process's).
   */
  const takeKept = (endpoint: GatedEndpoint): HeldLease | undefined => {
    const list = kept.get(endpoint.id);
    const at = now();
    while (list && list.length > 0) {
      const lease = list.pop()!;
      const reusable = at - lease.grantedAt < REUSE_MS && lease.grantedMax <= endpoint.maxConcurrency && (inUse.get(endpoint.id) ?? 0) < endpoint.maxConcurrency;
      if (reusable) return lease;
      void giveBack(endpoint.id, lease);
    }
    kept.delete(endpoint.id);
    return undefined;
  };
  /** Asks Redis for a lease of the endpoint; undefined when it is at its maximum. */
  const askRedis = async (endpoint: GatedEndpoint): Promise<HeldLease | undefined> => {
    const token = randomUUID();
    const grantedAt = now();
    const grantedMax = await submit({ endpointId: endpoint.id, token, endpoint });
    return grantedMax === undefined ? undefined : { token, grantedAt, grantedMax, onReleased: [], keptAt: 0 };
  };

  return {
    async acquire(endpoint) {
      const lease = takeKept(endpoint) ?? (await askRedis(endpoint));
      if (!lease) return { ok: false, retryInMs: BUSY_RETRY_MS };
      countInUse(endpoint.id, 1);
      let released: Promise<void> | undefined;
      const release = () => {
        if (!released) {
          released = new Promise<void>((settle) => lease.onReleased.push(settle));
          countInUse(endpoint.id, -1);
          keep(endpoint.id, lease);
        }
        return released;
      };
      // A handed-over lease's earlier holders are told once it moves on: it is taken.
      const handedOver = lease.onReleased.splice(0);
      for (const settle of handedOver) settle();
      const wait = await withinRate(endpoint.rateLimitPerSecond === null ? undefined : limiterOf(endpoint.rateLimitPerSecond), endpoint.id).catch(async (error: unknown) => {
        // Redis failing: the lease goes back at once, or it would hold one of the endpoint's places until it runs out.
        countInUse(endpoint.id, -1);
        await giveBack(endpoint.id, lease);
        throw error;
      });
      if (wait > 0) {
        void release();
        return { ok: false, retryInMs: wait };
      }
      return { ok: true, release };
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      sweep(true);
      await Promise.all(givingBack);
    },
  };
}
