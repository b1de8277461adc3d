/**
 * Tributary as `npm start` runs it, in development mode (every caller is the development
 * principal, so no token is needed) with the embedded in-memory database and logging off.
 */
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startTributary } from '../../src/main.ts';
import { GRAPHQL_PATH } from '../../src/server/yoga.ts';
import type { RunningPeer } from './peer.ts';

export async function startTributaryPeer(): Promise<RunningPeer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', NODE_ENV: 'test' });
  const tributary = await startTributary(config, { logger: createLogger({ level: 'silent' }) });
  return { port: tributary.port, path: GRAPHQL_PATH, dispose: () => tributary.dispose() };
}
