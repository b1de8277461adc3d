/**
 * The GraphQL server: token verification, the dispatcher that delivers events to subscribers,
 * GraphQL over HTTP (yoga) and WebSocket (graphql-transport-ws) on one port, with `/health`,
 * `/ready`, `/metrics` and the admin REST endpoints (`/api/alerts`) beside them.
 */
import ipaddr from 'ipaddr.js';
import { createTokenVerifier } from '../auth/token-verifier.ts';
import { createCleanupStack } from '../cleanup-stack.ts';
import { defaultPublicationName } from '../pipeline/cdc/wal/replication-names.ts';
import { assertLogicalReplicationAllowed } from '../pipeline/cdc/wal/replication-setup.ts';
import { createAlertAdmin } from '../pipeline/alerts/alert-admin.ts';
import { createAnalyticsReader } from '../pipeline/analytics/analytics-reader.ts';
import { createDispatcher, type DispatcherStats } from '../pipeline/dispatch/dispatcher.ts';
import { createMemoryPublishKeys } from '../pipeline/idempotency/memory-publish-keys.ts';
import { createRedisPublishKeys } from '../pipeline/idempotency/redis-publish-keys.ts';
import { createOutboxAdmin } from '../pipeline/outbox/outbox-admin.ts';
import { createOutboxPool } from '../pipeline/outbox/outbox-pool.ts';
import { createSubjectLimits } from '../pipeline/subject-limits.ts';
import { createWebhookAdmin } from '../pipeline/webhooks/webhook-admin.ts';
import { deliveryScheduler } from '../pipeline/webhooks/webhook-fan-in.ts';
import type { Services } from '../resolvers/context.ts';
import { createErrorMasker } from '../schema/errors.ts';
import { getSchema } from '../schema/index.ts';
import { createGraphQLPostHandler } from '../server/graphql-post.ts';
import { createAdminApi } from '../server/rest/admin-api.ts';
import { CloseCode } from '../server/ws/close-codes.ts';
import { createPersistedQueries } from '../server/persisted-queries.ts';
import { createOperationExecutor } from '../server/ws/executor.ts';
import { createSocketSessions } from '../server/ws/socket-sessions.ts';
import { createGraphQLWebSocketServer, outboundBufferBytes } from '../server/ws/websocket-server.ts';
import { createYogaServer } from '../server/yoga.ts';
import type { Cdc } from './cdc.ts';
import { listen, readinessChecks, type Listening } from './listen.ts';
import type { ClusterDashboard } from './dashboard.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';
import type { Sync } from './sync.ts';
import { componentLogger } from '../logger.ts';

export interface ServerStats extends DispatcherStats {
  /** Open graphql-ws sockets. */
  readonly connections: number;
  /** Channel memberships (one per active `channel` subscription). */
  readonly channelMembers: number;
}

export interface GraphQLServer extends Listening, Disposable {
  /** Live counts, for tests that wait on server state. */
  stats(): ServerStats;
  /**
   * The first step of a shutdown: `/ready` answers 503, the listener closes, new sockets are
   * refused, open ones are closed with 1001 and terminated if still open after `socketsTimeoutMs`;
   * resolves once they and the HTTP requests under way are done. Idempotent (the first call's
   * timeout counts); `dispose()` runs it too.
   */
  stopAccepting(socketsTimeoutMs: number): Promise<void>;
}

/**
 * How long a keyed publish holds its key before its event is placed (one log append: Redis fails
 * fast, the memory log at once); a try that died, or failed to release it, holds it that long.
 */
const PUBLISH_KEY_IN_FLIGHT_MS = 15_000;

export interface ServerParts {
  readonly pipeline: Pipeline;
  readonly dashboard: ClusterDashboard;
  readonly sync: Sync;
  readonly cdc: Cdc;
}

export async function startServer(context: StartContext, parts: ServerParts): Promise<GraphQLServer> {
  const { config, metrics, logger } = context;
  const { pipeline } = parts;
  const cleanup = createCleanupStack(logger);
  try {
    const verifier = createTokenVerifier({ auth: config.auth });
    if (verifier.mode === 'development') {
      logger.warn('no JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL: development mode, every caller acts as an admin of app/env/tenant "default"');
      // HOST defaults to 127.0.0.1 here: one set wider lets the network act as that admin.
      if (!isLoopback(config.host)) {
        logger.warn({ host: config.host }, 'development mode on a non-loopback HOST: anyone who can reach this port acts as an admin; set JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL, or HOST=127.0.0.1');
      }
    }
    const dispatcher = createDispatcher({ log: pipeline.log, bus: pipeline.bus, logger, metrics, analytics: pipeline.analytics.recorder });
    cleanup.push('dispatcher', () => dispatcher.close());
    // Filled by the WebSocket server as sockets are acknowledged; the resolvers reach them here (refreshAuth).
    const sockets = createSocketSessions();
    const keyTimes = { ttlMs: config.events.publishKeyTtlMs, inFlightMs: PUBLISH_KEY_IN_FLIGHT_MS };
    const publishKeys = context.clients.redis
      ? createRedisPublishKeys({ redis: context.clients.redis.command, keyPrefix: config.redisKeyPrefix, ...keyTimes })
      : createMemoryPublishKeys(keyTimes);
    cleanup.push('publish keys', () => publishKeys.close());
    const webhooks = createWebhookAdmin({
      db: context.clients.db,
      log: pipeline.log,
      endpoints: pipeline.webhooks.endpoints,
      scheduler: deliveryScheduler(pipeline.webhooks),
      statistics: pipeline.webhooks.statistics,
      allowPrivateTargets: config.webhooks.allowPrivateTargets,
      maxBodyBytes: config.webhooks.maxBodyBytes,
      logger: componentLogger(logger, 'webhooks'),
    });
    cleanup.push('webhook admin', () => webhooks.close());
    const subjectLimits = createSubjectLimits({
      publishesPerSecond: config.events.publishRatePerSecond,
      newStreamsPerMinute: config.events.topicNewStreamsPerMinute,
      log: pipeline.log,
      ...(context.clients.redis && { redis: context.clients.redis.command }),
      keyPrefix: config.redisKeyPrefix,
      metrics,
      logger: componentLogger(logger, 'subject-limits'),
    });
    const services: Services = {
      channels: pipeline.channels,
      router: pipeline.router,
      publishKeys,
      log: pipeline.log,
      subjectLimits,
      documents: parts.sync.documents,
      cdc: parts.cdc.cdc,
      cdcStore: parts.cdc.cdcStore,
      outbox: createOutboxAdmin({ db: context.clients.db, connect: (url) => createOutboxPool(url, logger), checkReplication: assertLogicalReplicationAllowed, publicationOf: defaultPublicationName, logger }),
      webhooks,
      alerts: createAlertAdmin({ db: context.clients.db, router: pipeline.router, logger }),
      gateway: pipeline.gateway,
      analytics: createAnalyticsReader({ db: context.clients.db, store: pipeline.analytics.store, now: context.now }),
      dashboard: { read: () => parts.dashboard.read(), operatorScope: config.operatorScope },
      sockets,
      metrics,
      logger,
      limits: { maxEventPayloadBytes: config.events.maxPayloadBytes, recordsStatementTimeoutMs: config.cdc.recordsStatementTimeoutMs },
    };
    const persistedQueries = createPersistedQueries({ maxEntries: config.limits.persistedQueriesMax });
    const yoga = createYogaServer({ schema: getSchema(), verifier, services, limits: config.limits, cors: config.cors, persistedQueries, logger });
    cleanup.push('graphql engine', async () => {
      await yoga.dispose();
    });
    const webSocket = createGraphQLWebSocketServer({
      verifier,
      execute: createOperationExecutor(yoga, { maskError: createErrorMasker(componentLogger(logger, 'graphql')), persistedQueries }),
      dispatcher,
      gateway: pipeline.gateway,
      sessions: sockets,
      metrics,
      limits: config.limits,
      maxBufferedBytes: outboundBufferBytes(config.events.maxPayloadBytes),
      logger,
    });
    const stopSampling = metrics.sample({ connections: () => webSocket.connectionCount, subscriptions: () => dispatcher.stats().subscribers });
    cleanup.push('metrics sampler', () => Promise.resolve(stopSampling()));
    const api = createAdminApi({ verifier, services, logger });
    const http = await listen(context, { graphql: { yoga, webSocket, maxBodyBytes: config.limits.httpMaxBodyBytes, post: createGraphQLPostHandler(yoga, verifier, metrics) }, api, readiness: [...readinessChecks(context.clients), ...parts.sync.readiness] });
    // The listener first — /ready turns 503 and no connection comes in after it — then the
    // sockets, closed meanwhile: the upgrades on a connection accepted before are refused too.
    // Both drain together; the engine and everything below it go after (reverse order).
    let stopping: Promise<void> | undefined;
    const stopAccepting = (socketsTimeoutMs: number) =>
      (stopping ??= Promise.all([http.dispose(), webSocket.close(CloseCode.GoingAway, 'Server shutting down', socketsTimeoutMs)]).then(() => undefined));
    // A quarter of the shutdown time when disposed without the shared deadline's budget (a failed start).
    cleanup.push('listener and sockets', () => stopAccepting(config.shutdownTimeoutMs / 4));
    return {
      url: http.url,
      port: http.port,
      stats: () => ({ connections: webSocket.connectionCount, channelMembers: pipeline.channels.memberCount(), ...dispatcher.stats() }),
      stopAccepting,
      dispose: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run();
    throw error;
  }
}

/** Whether `host` (`HOST`) is reachable from this machine only. */
function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  return ipaddr.isValid(host) && ipaddr.process(host).range() === 'loopback';
}
