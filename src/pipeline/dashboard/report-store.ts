/**
 * Where the instances' reports meet: in Redis when configured (every instance of the cluster), in
 * this process's memory otherwise (the embedded default is one process). A report lives
 * `ttlMs`: an instance that stopped reporting (it died, or its network did) drops out of the
 * cluster view on its own. Each instance keeps only its latest report.
 */
import type { Redis } from 'ioredis';
import type { InstanceReport } from './instance-report.ts';

export interface ReportStore {
  put(report: InstanceReport): Promise<void>;
  /** The latest report of every instance that reported within the TTL. */
  all(): Promise<InstanceReport[]>;
  /** An instance stopped: its report goes now rather than at the end of its TTL. */
  remove(instance: string): Promise<void>;
  /** True for the one instance that claims tick `bucket` first (it publishes that tick's dashboard). */
  claimTick(bucket: number): Promise<boolean>;
}

/** Reports kept at most (a bound on a cluster's size, against a flood of short-lived processes). */
const MAX_INSTANCES = 1_000;

export function createMemoryReportStore(options: { readonly ttlMs: number; readonly now: () => number }): ReportStore {
  const reports = new Map<string, InstanceReport>();
  const prune = () => {
    const oldest = options.now() - options.ttlMs;
    for (const [instance, report] of reports) if (report.at < oldest) reports.delete(instance);
  };
  return {
    put(report) {
      prune();
      if (reports.has(report.instance) || reports.size < MAX_INSTANCES) reports.set(report.instance, report);
      return Promise.resolve();
    },
    all() {
      prune();
      return Promise.resolve([...reports.values()]);
    },
    remove(instance) {
      reports.delete(instance);
      return Promise.resolve();
    },
    // One process: it publishes every tick.
    claimTick: () => Promise.resolve(true),
  };
}

/**
 * Redis: a key per instance holding its report (expiring after the TTL) and a sorted set of the
 * instances by report time, to find them without SCAN; members older than the TTL are removed as
 * reports are read.
 */
export function createRedisReportStore(options: { readonly redis: Redis; readonly keyPrefix: string; readonly ttlMs: number; readonly now: () => number }): ReportStore {
  const { redis, keyPrefix, ttlMs } = options;
  const index = `${keyPrefix}dashboard:instances`;
  const keyOf = (instance: string) => `${keyPrefix}dashboard:instance:${instance}`;
  return {
    async put(report) {
      await redis
        .multi()
        .set(keyOf(report.instance), JSON.stringify(report), 'PX', ttlMs)
        .zadd(index, report.at, report.instance)
        .pexpire(index, ttlMs * 4)
        .exec();
    },
    async all() {
      const since = options.now() - ttlMs;
      await redis.zremrangebyscore(index, '-inf', `(${since}`);
      const instances = await redis.zrevrangebyscore(index, '+inf', since, 'LIMIT', 0, MAX_INSTANCES);
      if (instances.length === 0) return [];
      const values = await redis.mget(instances.map(keyOf));
      return values.flatMap((value) => (value === null ? [] : [JSON.parse(value) as InstanceReport]));
    },
    async remove(instance) {
      await redis.multi().del(keyOf(instance)).zrem(index, instance).exec();
    },
    async claimTick(bucket) {
      return (await redis.set(`${keyPrefix}dashboard:tick:${bucket}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
    },
  };
}
