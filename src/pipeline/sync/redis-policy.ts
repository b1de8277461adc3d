import type { Redis } from 'ioredis';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { SyncDurability } from './cached-documents.ts';

/**
 * What Redis's `maxmemory-policy` may evict once Redis reaches `maxmemory`:
 * - `none`: nothing (`noeviction`: writes are refused instead, and answered UNAVAILABLE);
 * - `ttl-keys`: only keys with a TTL (`volatile-*`). Dirty document entries have none, so no
 *   document change is lost; event logs, document locks and wait marks have one: cursors into an
 *   evicted log get RESYNC_REQUIRED, and a document's events may go out of order (subscribers resync);
 * - `any-key`: any key (`allkeys-*`, or a policy this version does not know): dirty document
 *   entries too — in `async` durability, acknowledged changes the database does not have yet
 *   vanish without a trace (20 of 25 in the review's test with `allkeys-random`).
 */
export type EvictionRisk = 'none' | 'ttl-keys' | 'any-key';

function evictionRiskOf(policy: string): EvictionRisk {
  if (policy === 'noeviction') return 'none';
  return policy.startsWith('volatile-') ? 'ttl-keys' : 'any-key';
}

/** `maxmemory_policy` from the text of `INFO memory`; undefined when the reply has none (a proxy). */
function maxmemoryPolicyOf(info: string): string | undefined {
  return /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
}

export interface EvictionPolicyWatchOptions {
  /** The command connection; the policy is read on it when it connects and reconnects. */
  readonly redis: Redis;
  readonly durability: SyncDurability;
  readonly metrics: Pick<Metrics, 'redisEvictionPolicyOk'>;
  readonly logger: Logger;
  /**
   * How often the policy is read again while connected, in ms: `CONFIG SET maxmemory-policy`
   * changes it without a reconnect.
   * @default 60000
   */
  readonly recheckIntervalMs?: number;
}

export interface EvictionPolicyWatch {
  /**
   * The readiness check: fails while the policy last read may evict dirty document entries and
   * durability is `async` (acknowledged writes could be lost); passes otherwise, and while the
   * policy is unknown (Redis away: the `redis` check reports that).
   */
  check(): Promise<void>;
  /** Reads the policy now (what a reconnect does); answers it, or undefined when it could not be read. */
  refresh(): Promise<string | undefined>;
  /** Stops watching. Idempotent. */
  dispose(): void;
}

/**
 * Reads Redis's `maxmemory-policy` from `INFO memory` — not `CONFIG GET`, which managed Redis
 * services often disable — when the connection is ready and every `recheckIntervalMs`, and reports
 * it: the `tributary_redis_eviction_policy_ok` gauge, an error line for a policy that may evict
 * dirty document entries (a warning for `volatile-*`), logged when the policy read changes, and a
 * readiness check (`check`).
 *
 * Readiness fails only in `async` durability: there an evicted dirty entry is an acknowledged
 * write lost without a trace, and an instance that cannot keep its writes should not take traffic.
 * In `sync` durability the database has every acknowledged change before it is answered, so an
 * eviction costs a retry or a resync, not data: logged and measured, still ready.
 */
export function watchEvictionPolicy(options: EvictionPolicyWatchOptions): EvictionPolicyWatch {
  const { redis, durability, metrics } = options;
  const logger = componentLogger(options.logger, 'redis-policy');
  /** The policy last read (undefined: not read yet), and the one last logged. */
  let policy: string | undefined;
  let logged: string | undefined;
  let reading: Promise<string | undefined> | undefined;
  let disposed = false;

  const report = (read: string) => {
    policy = read;
    metrics.redisEvictionPolicyOk.reset();
    metrics.redisEvictionPolicyOk.set({ policy: read }, evictionRiskOf(read) === 'any-key' ? 0 : 1);
    if (read === logged) return;
    const previous = logged;
    logged = read;
    const risk = evictionRiskOf(read);
    if (risk === 'any-key') {
      logger.error(
        { policy: read, durability, readiness: durability === 'async' ? 'failing' : 'unaffected' },
        `Redis maxmemory-policy is ${read}: once Redis is full it may evict dirty document entries — ` +
          (durability === 'async'
            ? 'acknowledged document changes the database does not have yet would be lost silently; '
            : 'document changes still waiting for the database would be dropped, and event logs cut (subscribers resync); ') +
          'set maxmemory-policy noeviction (or a volatile-* policy)',
      );
    } else if (risk === 'ttl-keys') {
      logger.warn(
        { policy: read },
        `Redis maxmemory-policy is ${read}: once Redis is full it may evict event logs and document locks (keys with a TTL): cursors get RESYNC_REQUIRED; documents are not lost. noeviction avoids this`,
      );
    } else if (previous !== undefined) {
      logger.info({ policy: read }, 'Redis maxmemory-policy is noeviction');
    }
  };

  const refresh = (): Promise<string | undefined> => {
    reading ??= (async () => {
      try {
        const read = maxmemoryPolicyOf(await redis.info('memory'));
        if (read === undefined) {
          logger.warn('Redis INFO memory has no maxmemory_policy (a proxy?): its eviction policy cannot be checked; it must be noeviction');
        } else if (!disposed) {
          report(read);
        }
        return read;
      } catch (error) {
        // Redis away: read again at the next 'ready'.
        logger.debug({ err: error }, 'could not read the Redis eviction policy');
        return undefined;
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  };

  const onReady = () => void refresh();
  redis.on('ready', onReady);
  if (redis.status === 'ready') onReady();
  const timer = setInterval(() => {
    if (redis.status === 'ready') onReady();
  }, options.recheckIntervalMs ?? 60_000);
  timer.unref();

  return {
    check() {
      if (durability === 'async' && policy !== undefined && evictionRiskOf(policy) === 'any-key') {
        return Promise.reject(
          new TributaryError(ErrorCode.MISCONFIGURED, `Redis maxmemory-policy ${policy} may evict acknowledged document changes (SYNC_DURABILITY=async)`),
        );
      }
      return Promise.resolve();
    },
    refresh,
    dispose() {
      disposed = true;
      clearInterval(timer);
      redis.off('ready', onReady);
    },
  };
}
