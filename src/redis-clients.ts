import { once } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.ts';

/*
 * How the server's Redis connections are made, reported and closed. Only `main.ts` calls these:
 * it remains the one place that decides which clients exist.
 */

/**
 * A connection whose commands fail fast while Redis is away instead of queueing without bound;
 * ioredis keeps reconnecting in the background. Its outages are logged once, not per retry.
 */
export function createRedisClient(url: string, name: string, logger: Logger, overrides: RedisOptions = {}): Redis {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: name, ...overrides });
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

/** Gives Redis a moment to connect so the first readiness answer is meaningful; never fails. */
export async function redisConnected(redis: Redis, timeoutMs: number, logger: Logger): Promise<void> {
  if (redis.status === 'ready') return;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    await once(redis, 'ready', { signal: controller.signal });
  } catch {
    logger.warn({ timeoutMs }, 'redis not reachable yet; starting anyway and reporting not ready until it is');
  } finally {
    clearTimeout(timer);
  }
}

export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit();
  else redis.disconnect();
}
