import { Redis, type RedisOptions } from 'ioredis';
import { ErrorCode, TributaryError } from './errors.ts';
import type { Logger } from './logger.ts';

/*
 * How the server's Redis connections are made, reported and closed. Only `main.ts` calls these:
 * it remains the one place that decides which clients exist.
 */

/**
 * How long a command on a connection that fails fast waits for its reply, in ms. A Redis that
 * stops answering while the connection stays open (a partition, a paused Redis) leaves ioredis
 * `ready`, so nothing else fails the command until TCP gives up (~15 min); its caller answers
 * UNAVAILABLE instead. Nothing on such a connection blocks (no XREAD BLOCK, BLPOP or long
 * scripts; BullMQ has connections of its own), so a healthy Redis answers well within it. The
 * server's own command connection takes `REDIS_COMMAND_TIMEOUT_MS` from the configuration (this
 * default).
 */
const REDIS_COMMAND_TIMEOUT_MS = 5000;

/**
 * The two kinds of connection the server opens, with every bound spelled out.
 *
 * A `command` connection fails fast while Redis is away instead of queueing without bound (ioredis
 * keeps reconnecting in the background); each command waits at most `REDIS_COMMAND_TIMEOUT_MS`
 * for its reply, and one in flight when the connection drops is not sent again after
 * reconnecting: Redis may have run it already — a PUBLISH delivered twice to channels that
 * promise at most once, a script answering for its second run. Its outcome is unknown, so it
 * fails (ioredis drops such commands without settling them; the timeout settles them) and the
 * caller answers UNAVAILABLE.
 *
 * A `subscriber` connection (SUBSCRIBE only) queues while away and retries without limit: its
 * (un)subscriptions must wait and be replayed after a reconnect, and it sends no command whose
 * second run could do harm.
 */
export type RedisConnectionKind = 'command' | 'subscriber';

const CONNECTION_OPTIONS: Readonly<Record<RedisConnectionKind, RedisOptions>> = {
  command: {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    autoResendUnfulfilledCommands: false,
  },
  subscriber: { enableOfflineQueue: true, maxRetriesPerRequest: null },
};

export interface RedisClientOptions {
  /** A `command` connection's wait for each reply, in ms (a test's Redis link that loses replies waits less). @default REDIS_COMMAND_TIMEOUT_MS */
  readonly commandTimeoutMs?: number;
}

/** A connection of `kind` named `name` in `CLIENT LIST`; its outages are logged once, not per retry. */
export function createRedisClient(url: string, name: string, logger: Logger, kind: RedisConnectionKind = 'command', options: RedisClientOptions = {}): Redis {
  const timeout = kind === 'command' && options.commandTimeoutMs !== undefined && { commandTimeout: options.commandTimeoutMs };
  const redis = new Redis(url, { ...CONNECTION_OPTIONS[kind], ...timeout, connectionName: name });
  let reported = false;
  redis.on('error', (error: Error) => {
    if (!reported) logger.warn({ err: error }, 'redis unavailable; reconnecting');
    reported = true;
  });
  redis.on('ready', () => {
    if (reported) logger.info('redis reconnected');
    reported = false;
  });
  return redis;
}

export interface LivenessOptions {
  /** @default 5000 */
  readonly intervalMs?: number;
  /** @default 5000 */
  readonly timeoutMs?: number;
}

/**
 * Pings `redis` every `intervalMs` while it is ready, and drops and reopens the connection when a
 * ping is not answered within `timeoutMs`. A Redis that stops answering while the connection stays
 * open (a partition, a failover behind the same address, a dead NAT entry) leaves ioredis `ready`:
 * the command connection's commands would each time out for as long as TCP takes to give up
 * (~15 min), and the SUBSCRIBE connection, which only receives, would wait in silence for hours —
 * live events lost without a sign. Reopened, the command connection answers again, and the
 * subscriber's `close` and `ready` start the catch-up its listeners run after an outage. Returns
 * the stop.
 */
export function watchLiveness(redis: Redis, logger: Logger, options: LivenessOptions = {}): () => void {
  const intervalMs = options.intervalMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  /** The ping waited for; a later one replaces it (a ping from before a reconnect settles late or never). */
  let waiting: object | undefined;
  const timer = setInterval(() => {
    if (waiting !== undefined || redis.status !== 'ready') return;
    const ping = {};
    waiting = ping;
    const deadline = setTimeout(() => {
      if (waiting !== ping) return;
      waiting = undefined;
      logger.warn({ timeoutMs }, 'redis did not answer a ping; reconnecting');
      redis.disconnect(true);
    }, timeoutMs);
    const settle = () => {
      clearTimeout(deadline);
      if (waiting === ping) waiting = undefined;
    };
    // A refusal is an answer: the connection is alive (its errors are reported by ioredis).
    redis.ping().then(settle, settle);
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    waiting = undefined;
  };
}

/**
 * Gives Redis up to `timeoutMs` to connect so the first readiness answer is meaningful. Connection
 * errors meanwhile are not an answer: a Redis started with the process (the same compose file, the
 * same pod) refuses connections until it listens, and ioredis goes on retrying —
 * `events.once(redis, 'ready')` would reject at the first ECONNREFUSED and start the process
 * degraded at once. A refused login is an answer, and no retry mends it: the promise rejects
 * (MISCONFIGURED), as a database refusing its login fails the start.
 */
export async function redisConnected(redis: Redis, timeoutMs: number, logger: Logger): Promise<void> {
  if (redis.status === 'ready') return;
  let onReady = () => {};
  let onError = (_error: Error) => {};
  let timer: NodeJS.Timeout | undefined;
  try {
    const connected = await new Promise<boolean>((resolve, reject) => {
      onReady = () => resolve(true);
      onError = (error) => {
        if (isLoginRefusal(error)) reject(new TributaryError(ErrorCode.MISCONFIGURED, `Redis refused the login in REDIS_URL (${error.message.split(' ')[0]}): check its user name and password`, { cause: error }));
      };
      redis.once('ready', onReady);
      redis.on('error', onError);
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    if (!connected) logger.warn({ timeoutMs }, 'redis not reachable yet; starting anyway and reporting not ready until it is');
  } finally {
    clearTimeout(timer);
    redis.off('ready', onReady);
    redis.off('error', onError);
  }
}

/**
 * Fails (MISCONFIGURED) when `redis` is a node of a Redis Cluster. The server's scripts and
 * multi-key commands need their keys on one node (a topic's log, its index and its retention
 * together), and one connection to one node of a cluster answers `MOVED`/`CROSSSLOT` for the
 * rest: most publishes and documents would fail as UNAVAILABLE while `/ready` said ok. A Redis
 * not connected yet is not asked.
 */
export async function refuseCluster(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') return;
  const info = await redis.info('cluster');
  if (/^cluster_enabled:1\s*$/m.test(info)) {
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      'REDIS_URL points at a Redis Cluster node; Tributary needs one Redis primary (failover behind one address, such as a managed endpoint), not a cluster',
    );
  }
}

/** Redis's answers to a wrong password or user (`WRONGPASS`) and to a missing one (`NOAUTH`). */
function isLoginRefusal(error: Error): boolean {
  return /^(WRONGPASS|NOAUTH)\b/.test(error.message);
}

export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit();
  else redis.disconnect();
}
