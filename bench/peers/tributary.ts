/**
 * Tributary as `npm start` runs it, in development mode (every caller is the development
 * principal, so no token is needed; unless `settings` has `JWT_SECRET`) with the embedded
 * in-memory database and logging off.
 * Without `redis` the event log and bus are in memory (one process); with it they are Redis
 * Streams and pub/sub, as a multi-instance deployment runs them, and documents have the Redis hot
 * cache in front of the database.
 */
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startTributary } from '../../src/main.ts';
import { GRAPHQL_PATH } from '../../src/server/yoga.ts';
import type { RunningPeer } from './peer.ts';

export interface TributaryPeerOptions {
  /** Redis mode. @default undefined (in-memory mode) */
  readonly redis?: { readonly url: string; readonly keyPrefix: string };
  /** When the document service answers a write (Redis mode). @default 'sync' */
  readonly durability?: 'async' | 'sync';
  /**
   * Further configuration variables (`JWT_SECRET`, `CDC_RELOAD_INTERVAL_MS`…); with `JWT_SECRET` callers
   * need tokens instead of being the development principal. @default {}
   */
  readonly settings?: Readonly<Record<string, string>>;
}

export async function startTributaryPeer(options: TributaryPeerOptions = {}): Promise<RunningPeer> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: 'memory://',
    LOG_LEVEL: 'silent',
    NODE_ENV: 'test',
    // The load client holds every socket as one principal (the `cdc` workload: 1,000 sockets of one
    // tenant's token), which the per-principal bound of a production instance would refuse.
    WS_MAX_CONNECTIONS: '100000',
    WS_MAX_CONNECTIONS_PER_SUBJECT: '100000',
    // The publishing runner is one principal too, publishing as fast as each workload asks.
    PUBLISH_RATE_PER_SECOND: '10000000',
    TOPIC_NEW_STREAMS_PER_MINUTE: '10000000',
    ...(options.redis !== undefined && { REDIS_URL: options.redis.url, REDIS_KEY_PREFIX: options.redis.keyPrefix }),
    ...(options.durability !== undefined && { SYNC_DURABILITY: options.durability }),
    ...options.settings,
  });
  const tributary = await startTributary(config, { logger: createLogger({ level: 'silent' }) });
  return { port: tributary.port, path: GRAPHQL_PATH, dispose: () => tributary.dispose() };
}
