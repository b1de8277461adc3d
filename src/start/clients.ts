/**
 * Every connection to the platform's backing services, made in one place: the platform database
 * (migrated before anything uses it) and, with REDIS_URL, the Redis command connection and the
 * connection that SUBSCRIBEs. Subsystems receive these; none opens its own.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import { migrate } from '../db/migrations.ts';
import { openDatabase } from '../db/open.ts';
import type { Logger } from '../logger.ts';
import { closeRedis, createRedisClient, redisConnected } from '../redis-clients.ts';
import { createCleanupStack } from '../cleanup-stack.ts';

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

export async function createClients(config: Config, logger: Logger): Promise<Clients & { dispose(): Promise<void> }> {
  const cleanup = createCleanupStack(logger);
  try {
    const db = await openDatabase(config, logger);
    cleanup.push('database', () => db.close());
    await migrate(db, { logger });
    const redis = config.redisUrl === undefined ? undefined : await connectRedis(config.redisUrl, logger, (name, run) => cleanup.push(name, run));
    if (redis && config.databaseUrl === undefined) {
      // Right for one instance; several would share Redis's events and cache yet each write its
      // documents, sources and endpoints to a database of its own, and drift apart.
      logger.warn(
        { dataDir: config.dataDir },
        'REDIS_URL with the embedded database: fine for one instance, but several instances need a shared DATABASE_URL too (each would keep documents, sources and webhooks of its own)',
      );
    }
    return { db, redis, dispose: () => cleanup.run() };
  } catch (error) {
    await cleanup.run();
    throw error;
  }
}

async function connectRedis(
  url: string,
  parentLogger: Logger,
  onDispose: (name: string, run: () => Promise<void>) => void,
): Promise<RedisClients> {
  const logger = parentLogger.child({ component: 'redis' });
  const command = createRedisClient(url, 'tributary', logger);
  onDispose('redis', () => closeRedis(command));
  const subscriber = createRedisClient(url, 'tributary-subscriber', logger, { enableOfflineQueue: true, maxRetriesPerRequest: null });
  onDispose('redis subscriber', () => closeRedis(subscriber));
  await Promise.all([command, subscriber].map((client) => redisConnected(client, REDIS_CONNECT_WAIT_MS, logger)));
  return { command, subscriber };
}
