/**
 * Composition root: configuration → clients → pipeline → GraphQL → HTTP/WebSocket server.
 * The only place that constructs database and Redis clients; everything else receives them.
 * Run directly (`npm start`), it also installs the signal handlers for a graceful shutdown.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createTokenVerifier } from './auth/token-verifier.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import type { Database } from './db/database.ts';
import { createEmbeddedDatabase } from './db/embedded.ts';
import { migrate } from './db/migrations.ts';
import { createPostgresDatabase } from './db/postgres.ts';
import { createLogger, type Logger } from './logger.ts';
import { createChannelHub } from './pipeline/channels/channel-hub.ts';
import type { Services } from './resolvers/context.ts';
import { getSchema } from './schema/index.ts';
import { createHttpServer, type ReadinessCheck } from './server/http-server.ts';
import { CloseCode } from './server/ws/close-codes.ts';
import { createOperationExecutor } from './server/ws/executor.ts';
import { createGraphQLWebSocketServer } from './server/ws/websocket-server.ts';
import { createYogaServer, GRAPHQL_PATH } from './server/yoga.ts';

export interface Tributary {
  /** `http://host:port` the server listens on. */
  readonly url: string;
  readonly port: number;
  /** Live counts, for metrics and for tests that wait on server state. */
  stats(): TributaryStats;
  /** Graceful shutdown: stop accepting, close sockets with 1001, dispose everything. Idempotent. */
  dispose(): Promise<void>;
}

export interface TributaryStats {
  /** Open graphql-ws sockets. */
  readonly connections: number;
  /** Channel memberships (one per active `channel` subscription). */
  readonly channelMembers: number;
}

export interface StartOptions {
  readonly logger?: Logger;
}

export async function startTributary(config: Config, options: StartOptions = {}): Promise<Tributary> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const cleanup = createCleanupStack(logger);
  try {
    const db = await openDatabase(config, logger);
    cleanup.push('database', () => db.close());
    await migrate(db, { logger });

    const readiness: ReadinessCheck[] = [{ name: 'database', check: () => db.ping() }];
    if (config.redisUrl !== undefined) {
      const redis = createRedisClient(config.redisUrl, logger.child({ component: 'redis' }));
      cleanup.push('redis', () => closeRedis(redis));
      await redisConnected(redis, 5000, logger);
      readiness.push({ name: 'redis', check: async () => void (await redis.ping()) });
    }

    const verifier = createTokenVerifier({ auth: config.auth });
    if (verifier.mode === 'development') {
      logger.warn('no JWT_SECRET or JWT_JWKS_URL: development mode, every caller acts as an admin of app/env/tenant "default"');
    }

    const services: Services = { channels: createChannelHub() };
    const yoga = createYogaServer({ schema: getSchema(), verifier, services, limits: config.limits, logger });
    cleanup.push('graphql engine', async () => {
      await yoga.dispose();
    });
    const webSocket = createGraphQLWebSocketServer({
      verifier,
      execute: createOperationExecutor(yoga),
      limits: config.limits,
      logger,
    });
    const server = createHttpServer({ yoga, webSocket, readiness, logger });
    // Reverse order on the way out: sockets first, then the HTTP listener, then the clients.
    cleanup.push('http server', async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
    });
    cleanup.push('websocket server', () => webSocket.close(CloseCode.GoingAway, 'Server shutting down', config.shutdownTimeoutMs / 2));

    server.listen(config.port, config.host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const url = `http://${host}:${port}`;
    logger.info({ url: `${url}${GRAPHQL_PATH}`, database: db.kind, redis: config.redisUrl !== undefined }, 'Tributary is listening');

    return {
      url,
      port,
      stats: () => ({ connections: webSocket.connectionCount, channelMembers: services.channels.memberCount() }),
      dispose: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run();
    throw error;
  }
}

async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    return createPostgresDatabase({ url: config.databaseUrl, logger: logger.child({ component: 'db' }) });
  }
  return createEmbeddedDatabase({ dataDir: config.dataDir });
}

function createRedisClient(url: string, logger: Logger): Redis {
  // Commands fail fast while Redis is away instead of queueing without bound; ioredis keeps
  // reconnecting in the background.
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: 'tributary' });
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
async function redisConnected(redis: Redis, timeoutMs: number, logger: Logger): Promise<void> {
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

async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit();
  else redis.disconnect();
}

/** Disposers run in reverse order; each runs even when an earlier one fails. Idempotent. */
function createCleanupStack(logger: Logger) {
  const steps: { name: string; run: () => Promise<void> }[] = [];
  let running: Promise<void> | undefined;
  return {
    push(name: string, run: () => Promise<void>) {
      steps.push({ name, run });
    },
    run(): Promise<void> {
      running ??= (async () => {
        for (const step of steps.reverse()) {
          try {
            await step.run();
          } catch (error) {
            logger.error({ err: error, step: step.name }, 'shutdown step failed');
          }
        }
      })();
      return running;
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  const tributary = await startTributary(config, { logger });

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    tributary.dispose().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`Tributary failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
