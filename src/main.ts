/**
 * Composition root: configuration → clients → pipeline → GraphQL → HTTP/WebSocket server.
 * The only place that constructs database and Redis clients; everything else receives them.
 * Run directly (`npm start`), it also installs the signal handlers for a graceful shutdown.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { createTokenVerifier } from './auth/token-verifier.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import type { Database } from './db/database.ts';
import { createEmbeddedDatabase } from './db/embedded.ts';
import { migrate } from './db/migrations.ts';
import { createPostgresDatabase } from './db/postgres.ts';
import { createCleanupStack, type CleanupStack } from './cleanup-stack.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type CdcReaderSample } from './metrics.ts';
import { closeRedis, createRedisClient, redisConnected } from './redis-clients.ts';
import { createChannelHub, type ChannelHub } from './pipeline/channels/channel-hub.ts';
import { createRedisChannelTransport } from './pipeline/channels/redis-channel-transport.ts';
import { createDispatcher, type DispatcherStats } from './pipeline/dispatch/dispatcher.ts';
import type { EventLog } from './pipeline/log/event-log.ts';
import { createMemoryLog } from './pipeline/log/memory-log.ts';
import { createRedisLog } from './pipeline/log/redis-log.ts';
import type { EventBus } from './pipeline/pubsub/event-bus.ts';
import { createMemoryBus } from './pipeline/pubsub/memory-bus.ts';
import { createRedisBus } from './pipeline/pubsub/redis-bus.ts';
import { createEventRouter, type EventRouter } from './pipeline/router/event-router.ts';
import { createCdcService } from './pipeline/cdc/cdc-service.ts';
import { createCdcStore } from './pipeline/cdc/cdc-store.ts';
import { createSourceConnections } from './pipeline/cdc/wal/source-connections.ts';
import { createCachedDocumentService } from './pipeline/sync/cached-documents.ts';
import type { DocumentService } from './pipeline/sync/documents.ts';
import { createPostgresDocumentService } from './pipeline/sync/postgres-documents.ts';
import type { Services } from './resolvers/context.ts';
import { createErrorMasker } from './schema/errors.ts';
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

export interface TributaryStats extends DispatcherStats {
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
    const pipeline = await startPipeline(config, logger, cleanup);
    if (pipeline.redis) {
      const redis = pipeline.redis;
      readiness.push({ name: 'redis', check: async () => void (await redis.ping()) });
    }

    const verifier = createTokenVerifier({ auth: config.auth });
    if (verifier.mode === 'development') {
      logger.warn('no JWT_SECRET or JWT_JWKS_URL: development mode, every caller acts as an admin of app/env/tenant "default"');
    }

    const dispatcher = createDispatcher({ log: pipeline.log, bus: pipeline.bus, logger });
    cleanup.push('dispatcher', () => dispatcher.close());
    let connections = (): number => 0;
    let cdcReaders = (): readonly CdcReaderSample[] => [];
    const metrics = createMetrics({
      read: () => ({ connections: connections(), subscriptions: dispatcher.stats().subscribers, cdcReaders: cdcReaders() }),
    });
    const router = createEventRouter({
      log: pipeline.log,
      logger,
      onRouted: (event) => metrics.eventsRouted.inc({ source: event.source }),
    });
    const documents = createDocuments(config, { db, redis: pipeline.redis, router, logger });
    cleanup.push('documents', () => documents.close());
    const cdcStore = createCdcStore(db);
    const cdc = createCdcService({
      store: cdcStore,
      router,
      log: pipeline.log,
      logger,
      connect: (url) => createSourceConnections(url),
      redis: pipeline.redis,
      subscriber: pipeline.subscriber,
      keyPrefix: config.redisKeyPrefix,
      ...config.cdc,
      onUnroutable: () => metrics.cdcUnroutable.inc(),
    });
    cleanup.push('cdc', () => cdc.close());
    cdcReaders = () => cdc.leading();
    await cdc.start();
    const services: Services = {
      channels: pipeline.channels,
      router,
      log: pipeline.log,
      documents,
      cdc,
      cdcStore,
      metrics,
      logger,
      limits: { maxEventPayloadBytes: config.events.maxPayloadBytes },
    };
    const yoga = createYogaServer({ schema: getSchema(), verifier, services, limits: config.limits, logger });
    cleanup.push('graphql engine', async () => {
      await yoga.dispose();
    });
    const webSocket = createGraphQLWebSocketServer({
      verifier,
      execute: createOperationExecutor(yoga, { maskError: createErrorMasker(logger.child({ component: 'graphql' })) }),
      dispatcher,
      onSlowConsumer: () => metrics.slowConsumers.inc(),
      limits: config.limits,
      logger,
    });
    connections = () => webSocket.connectionCount;
    const server = createHttpServer({ yoga, webSocket, readiness, metrics: metrics.registry, logger });
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
      stats: () => ({
        connections: webSocket.connectionCount,
        channelMembers: services.channels.memberCount(),
        ...dispatcher.stats(),
      }),
      dispose: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run();
    throw error;
  }
}

interface Pipeline {
  readonly log: EventLog;
  readonly bus: EventBus;
  readonly channels: ChannelHub;
  /** The command connection, when Redis is configured. */
  readonly redis: Redis | undefined;
  /** The SUBSCRIBE connection, when Redis is configured. */
  readonly subscriber: Redis | undefined;
}

/**
 * The event log, live bus and channels: Redis Streams and pub/sub when REDIS_URL is set (shared
 * by every instance), an in-memory ring and bus otherwise (one process).
 */
async function startPipeline(config: Config, logger: Logger, cleanup: CleanupStack): Promise<Pipeline> {
  const retention = { maxEvents: config.events.logMaxEvents, maxAgeMs: config.events.logMaxAgeMs };
  if (config.redisUrl === undefined) {
    const bus = createMemoryBus();
    const log = createMemoryLog({ retention, publish: (stream, event) => bus.deliver(stream, event) });
    cleanup.push('event log', () => log.close());
    return { log, bus, channels: createChannelHub(), redis: undefined, subscriber: undefined };
  }
  const redisLogger = logger.child({ component: 'redis' });
  const redis = createRedisClient(config.redisUrl, 'tributary', redisLogger);
  cleanup.push('redis', () => closeRedis(redis));
  // A connection that SUBSCRIBEs can run nothing else. It queues (un)subscriptions made while
  // Redis is away and ioredis replays them, with every earlier subscription, on reconnect.
  const subscriber = createRedisClient(config.redisUrl, 'tributary-subscriber', redisLogger, {
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
  });
  cleanup.push('redis subscriber', () => closeRedis(subscriber));
  await Promise.all([redisConnected(redis, 5000, logger), redisConnected(subscriber, 5000, logger)]);

  const keyPrefix = config.redisKeyPrefix;
  const bus = createRedisBus({ subscriber, publisher: redis, logger, keyPrefix });
  const log = createRedisLog({ redis, retention, keyPrefix });
  cleanup.push('event log', () => log.close());
  const channels = createChannelHub({
    transport: createRedisChannelTransport({ pubsub: bus.pubsub, publisher: redis, keyPrefix }),
  });
  return { log, bus, channels, redis, subscriber };
}

/** Sync documents: the Redis hot cache in front of the database when Redis is configured. */
function createDocuments(
  config: Config,
  parts: { db: Database; redis: Redis | undefined; router: EventRouter; logger: Logger },
): DocumentService {
  const { db, redis, router, logger } = parts;
  if (redis === undefined) return createPostgresDocumentService({ db, router, logger });
  return createCachedDocumentService({
    db,
    redis,
    keyPrefix: config.redisKeyPrefix,
    router,
    logger,
    durability: config.sync.durability,
    ttlSeconds: config.sync.docTtlSeconds,
    sweepIntervalMs: config.sync.sweepIntervalMs,
  });
}

async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    return createPostgresDatabase({ url: config.databaseUrl, logger: logger.child({ component: 'db' }) });
  }
  return createEmbeddedDatabase({ dataDir: config.dataDir });
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
