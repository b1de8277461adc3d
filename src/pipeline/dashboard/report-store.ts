/**
 * Where the instances' reports meet: in Redis when configured (every instance of the cluster), in
 * this process's memory otherwise (the embedded default is one process). A report lives
 * `ttlMs`: an instance that stopped reporting (it died, or its network did) is shown gone until
 * then (`instance-presence.ts`), and drops out of the cluster view on its own. Each instance keeps
 * only its latest report; one that stopped cleanly may leave it behind marked stopped (`stoppedAt`),
 * for its TTL too.
 */
import type { Redis } from 'ioredis';
import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { InstanceReport } from './instance-report.ts';

export interface ReportStore {
  put(report: InstanceReport): Promise<void>;
  /** The latest report of every instance that reported within the TTL. */
  all(): Promise<InstanceReport[]>;
  /**
   * An instance stopped: its report goes now rather than at the end of its TTL — replaced by
   * `stopped` when given (its last report, `stoppedAt` set), which then stays the TTL from now.
   */
  remove(instance: string, stopped?: InstanceReport): Promise<void>;
  /** True for the one instance that claims tick `bucket` first (it publishes that tick's dashboard). */
  claimTick(bucket: number): Promise<boolean>;
}

/** Reports kept at most (a bound on a cluster's size, against a flood of short-lived processes). */
const MAX_INSTANCES = 1_000;

export function createMemoryReportStore(options: { readonly ttlMs: number; readonly now: () => number }): ReportStore {
  const reports = new Map<string, InstanceReport>();
  const prune = () => {
    const oldest = options.now() - options.ttlMs;
    // A stopped instance's last report is kept the TTL from its stop.
    for (const [instance, report] of reports) if ((report.stoppedAt ?? report.at) < oldest) reports.delete(instance);
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
    remove(instance, stopped) {
      reports.delete(instance);
      if (stopped) reports.set(instance, stopped);
      return Promise.resolve();
    },
    // One process: it publishes every tick.
    claimTick: () => Promise.resolve(true),
  };
}

/**
 * Redis: a key per instance holding its report (expiring after the TTL) and a sorted set of the
 * instances by report time, to find them without SCAN; members older than the TTL are removed as
 * reports are read. A command that fails (Redis away, or refusing) is UNAVAILABLE to the caller,
 * as a database outage is: the dashboard's readers answer 503 "retry", not a masked 500 — and
 * who logs it is the caller's choice (once an outage, not once a request).
 */
export function createRedisReportStore(options: {
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly ttlMs: number;
  readonly now: () => number;
  /** Where reports that are not one are told. */
  readonly logger: Logger;
}): ReportStore {
  const { redis, keyPrefix, ttlMs } = options;
  const logger = componentLogger(options.logger, 'report-store');
  const index = `${keyPrefix}dashboard:instances`;
  const keyOf = (instance: string) => `${keyPrefix}dashboard:instance:${instance}`;
  return {
    async put(report) {
      await unavailableOnFailure(
        redis.multi().set(keyOf(report.instance), JSON.stringify(report), 'PX', ttlMs).zadd(index, report.at, report.instance).pexpire(index, ttlMs * 4).exec(),
      );
    },
    async all() {
      const since = options.now() - ttlMs;
      await unavailableOnFailure(redis.zremrangebyscore(index, '-inf', `(${since}`));
      const instances = await unavailableOnFailure(redis.zrevrangebyscore(index, '+inf', since, 'LIMIT', 0, MAX_INSTANCES));
      if (instances.length === 0) return [];
      const values = await unavailableOnFailure(redis.mget(instances.map(keyOf)));
      return values.flatMap((value, at) => {
        if (value === null) return [];
        const report = parseReport(value);
        if (report) return [report];
        logger.warn({ instance: instances[at] }, 'malformed instance report ignored');
        return [];
      });
    },
    async remove(instance, stopped) {
      if (stopped === undefined) {
        await unavailableOnFailure(redis.multi().del(keyOf(instance)).zrem(index, instance).exec());
        return;
      }
      // In its place, scored by its stop: `all()` keeps it the TTL from then, as the key lives.
      const stoppedAt = stopped.stoppedAt ?? stopped.at;
      await unavailableOnFailure(
        redis.multi().set(keyOf(instance), JSON.stringify(stopped), 'PX', ttlMs).zadd(index, stoppedAt, instance).pexpire(index, ttlMs * 4).exec(),
      );
    },
    async claimTick(bucket) {
      return (await unavailableOnFailure(redis.set(`${keyPrefix}dashboard:tick:${bucket}`, '1', 'PX', ttlMs, 'NX'))) === 'OK';
    },
  };
}

/** A Redis command's failure as UNAVAILABLE (a client-facing code: the caller may retry). */
async function unavailableOnFailure<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (isTributaryError(error)) throw error;
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'The cluster dashboard is unavailable right now; retry shortly', { cause: error });
  }
}

/**
 * A report as Redis holds it; undefined for one that is not (not JSON, or without the fields the
 * cluster view reads: another version's, written by hand). Checks the shape, not each count.
 */
function parseReport(stored: string): InstanceReport | undefined {
  let value: unknown;
  try {
    value = JSON.parse(stored);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const report = value as Record<string, unknown>;
  const numbers = ['startedAt', 'at', 'intervalMs', 'connections', 'subscriptions'].every((name) => typeof report[name] === 'number');
  const lists = ['cdcReaders', 'outboxes', 'webhookBacklogs'].every((name) => Array.isArray(report[name]));
  const counts = isCounts(report['interval']) && isCounts(report['totals']);
  const stopped = report['stoppedAt'] === undefined || typeof report['stoppedAt'] === 'number';
  return typeof report['instance'] === 'string' && typeof report['role'] === 'string' && typeof report['countsEnabled'] === 'boolean' && numbers && lists && counts && stopped
    ? (value as InstanceReport)
    : undefined;
}

/** The fields of `ReportCounts` the cluster view adds and scales. */
function isCounts(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const counts = value as Record<string, unknown>;
  const isObject = (part: unknown) => typeof part === 'object' && part !== null;
  return (
    ['deliveries', 'bytes', 'resyncs', 'slowConsumerCloses'].every((name) => typeof counts[name] === 'number') &&
    isObject(counts['eventsBySource']) &&
    isObject(counts['webhookAttempts']) &&
    Array.isArray(counts['latencyBuckets'])
  );
}
