/**
 * Tributary as `npm start` runs it, in development mode (every caller is the development
 * principal, so no token is needed) with the embedded in-memory database and logging off.
 * Without `redisUrl` the event log and bus are in memory (one process); with it they are Redis
 * Streams and pub/sub, as a multi-instance deployment runs them.
 */
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startTributary } from '../../src/main.ts';
import { GRAPHQL_PATH } from '../../src/server/yoga.ts';
import type { RunningPeer } from './peer.ts';

export interface TributaryPeerOptions {
  /** `redis://127.0.0.1:port`: Redis mode. @default undefined (in-memory mode) */
  readonly redisUrl?: string;
}

export async function startTributaryPeer(options: TributaryPeerOptions = {}): Promise<RunningPeer> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: 'memory://',
    LOG_LEVEL: 'silent',
    NODE_ENV: 'test',
    ...(options.redisUrl !== undefined && { REDIS_URL: options.redisUrl }),
  });
  const tributary = await startTributary(config, { logger: createLogger({ level: 'silent' }) });
  return { port: tributary.port, path: GRAPHQL_PATH, dispose: () => tributary.dispose() };
}
