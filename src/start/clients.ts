/**
 * The shared connections to the platform's backing services: the platform database, which
 * `createClients` also migrates (every pending migration, before any subsystem uses it), and, with
 * REDIS_URL, the Redis command connection and the connection that SUBSCRIBEs. Subsystems receive
 * these. Not every Redis connection is made here: BullMQ's queue and worker open connections of
 * their own from the same REDIS_URL (`pipeline/webhooks/bullmq-scheduler.ts`, `openBullmqConnection`) — a
 * worker blocks on its connection, and BullMQ needs its own retry settings — and a leader election
 * given no shared release signals duplicates its command connection to SUBSCRIBE on
 * (`leader-election.ts`; the CDC readers are given the subscriber's). The connections to the
 * operators' own databases (CDC sources, outboxes) belong to those subsystems.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { migrate } from '../db/migrations.ts';
import { openDatabase } from '../db/open.ts';
import { componentLogger, type Logger } from '../logger.ts';
import { closeRedis, createRedisClient, redisConnected, refuseCluster, watchLiveness } from '../redis-clients.ts';

export interface RedisClients {
  /** Commands, scripts and PUBLISH; fails fast while Redis is away. */
  readonly command: Redis;
  /**
   * SUBSCRIBE only (a subscribed connection can run nothing else). It queues (un)subscriptions made
   * while Redis is away and ioredis replays them, with every earlier subscription, on reconnect.
   */
  readonly subscriber: Redis;
}

export interface Clients {
  readonly db: Database;
  /** Present when REDIS_URL is set. */
  readonly redis: RedisClients | undefined;
}

/** How long start-up waits for Redis before starting anyway and reporting not ready. */
const REDIS_CONNECT_WAIT_MS = 5000;
/**
 * How long a Redis connection's QUIT is waited for at shutdown, in ms: a Redis that answers does in
 * milliseconds (after the replies still owed). One that stopped answering never would; the
 * connection is then dropped.
 */
const REDIS_QUIT_WAIT_MS = 1000;

export async function createClients(config: Config, logger: Logger): Promise<Clients & { dispose(): Promise<void> }> {
  // Closed side by side, not one after another: the database's close (the last step of a shutdown)
  // must not wait behind a Redis that does not answer, nor Redis behind a database that does not.
  const closers = new Map<string, () => Promise<void>>();
  let closing: Promise<void> | undefined;
  const closeAll = () => {
    closing ??= Promise.all(
      [...closers].map(([name, close]) => close().catch((error: unknown) => logger.error({ err: error, step: name }, 'shutdown step failed'))),
    ).then(() => undefined);
    return closing;
  };
  try {
    const db = await openDatabase(config, logger);
    closers.set('database', () => db.close());
    await migrate(db, { logger });
    const redis = config.redisUrl === undefined ? undefined : await connectRedis(config.redisUrl, config.redisCommandTimeoutMs, logger, (name, run) => closers.set(name, run));
    if (redis && config.databaseUrl === undefined) {
      // Right for one instance; several would share Redis's events and cache yet each write its
      // documents, sources and endpoints to a database of its own, and drift apart.
      logger.warn(
        { dataDir: config.dataDir },
        'REDIS_URL with the embedded database: fine for one instance, but several instances need a shared DATABASE_URL too (each would keep documents, sources and webhooks of its own)',
      );
    }
    return { db, redis, dispose: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

async function connectRedis(
  url: string,
  commandTimeoutMs: number,
  parentLogger: Logger,
  onDispose: (name: string, run: () => Promise<void>) => void,
): Promise<RedisClients> {
  const logger = componentLogger(parentLogger, 'redis');
  const command = createRedisClient(url, 'tributary', logger, 'command', { commandTimeoutMs });
  const stopWatchingCommand = watchLiveness(command, logger);
  onDispose('redis', () => {
    stopWatchingCommand();
    return closeRedisWithin(command, REDIS_QUIT_WAIT_MS, logger);
  });
  const subscriber = createRedisClient(url, 'tributary-subscriber', logger, 'subscriber');
  const stopWatchingSubscriber = watchLiveness(subscriber, logger);
  onDispose('redis subscriber', () => {
    stopWatchingSubscriber();
    return closeRedisWithin(subscriber, REDIS_QUIT_WAIT_MS, logger);
  });
  // Both waited for (a refused login ends each at once): none outlives the start that failed.
  const waits = await Promise.allSettled([command, subscriber].map((client) => redisConnected(client, REDIS_CONNECT_WAIT_MS, logger)));
  const refusal = waits.find((wait) => wait.status === 'rejected');
  if (refusal !== undefined) throw refusal.reason;
  await refuseCluster(command);
  return { command, subscriber };
}

/** QUITs `redis` (`closeRedis`), or drops the connection when QUIT is not answered within `waitMs` or fails. */
async function closeRedisWithin(redis: Redis, waitMs: number, logger: Logger): Promise<void> {
  const quit = closeRedis(redis);
  // Dropped, the connection rejects the QUIT still waiting for its answer: nobody needs it then.
  quit.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), waitMs)));
  try {
    if ((await Promise.race([quit.then(() => 'quit' as const), expired])) === 'quit') return;
    logger.warn({ waitMs }, 'redis did not answer QUIT in time; disconnecting');
  } catch (error) {
    logger.warn({ err: error }, 'redis QUIT failed; disconnecting');
  } finally {
    clearTimeout(timer);
  }
  redis.disconnect();
}
