import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TokenVerifier } from '../../auth/token-verifier.ts';
import type { Limits } from '../../config.ts';
import { ErrorCode } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { CloseCode } from './close-codes.ts';
import { GraphQLWsConnection } from './connection.ts';
import { createFilterBudget } from './filter-budget.ts';
import { GRAPHQL_PATH } from '../yoga.ts';
import type { Dispatcher } from '../../pipeline/dispatch/dispatcher.ts';
import type { GatewayEmitter } from '../../pipeline/webhooks/gateway-emitter.ts';
import type { OperationExecutor } from './executor.ts';
import type { SocketSessionRegistry } from './socket-sessions.ts';
import { createSocketPlaces } from './socket-places.ts';
import { createSubjectQuota, type SubjectQuota } from './subject-quota.ts';

export interface GraphQLWebSocketServerOptions {
  readonly verifier: TokenVerifier;
  readonly execute: OperationExecutor;
  readonly dispatcher: Dispatcher;
  /** Told when a socket is acknowledged, starts a subscription and closes. @default no gateway events */
  readonly gateway?: Pick<GatewayEmitter, 'emit'>;
  /** Counts sockets closed for falling behind and refused at a connection limit. @default no metrics */
  readonly metrics?: Pick<Metrics, 'slowConsumers' | 'connectionsRefused'>;
  readonly limits: Pick<
    Limits,
    | 'wsMaxPayloadBytes'
    | 'connectionInitTimeoutMs'
    | 'maxConnections'
    | 'maxConnectionsPerSubject'
    | 'maxSubscriptionsPerConnection'
    | 'maxSubscriptionBytesPerConnection'
    | 'tokenExpiryGraceMs'
    | 'tokenExpiryNoticeMs'
  > &
    /** `maxFilterBytesPerSubject` unset: no budget of filter bytes. */
    Partial<Pick<Limits, 'maxFilterBytesPerSubject'>>;
  /** Where `refreshAuth` finds the sockets. @default sockets cannot be refreshed (refreshAuth answers UNAUTHENTICATED) */
  readonly sessions?: Pick<SocketSessionRegistry, 'add'>;
  readonly logger: Logger;
  /** Outbound bytes a socket may have queued before it is closed as a slow consumer (`outboundBufferBytes`). @default 8 MiB */
  readonly maxBufferedBytes?: number;
  /**
   * Write dispatched `next` frames, prebuilt, straight to the TCP socket under ws (one copy, one
   * write per tick); `false` sends them through ws's public `send`, e.g. if a ws upgrade stops
   * exposing the socket. @default true
   */
  readonly rawFrames?: boolean;
  /**
   * Interval of WebSocket-level pings, in ms; a socket that has not answered the previous ping
   * is terminated, so vanished clients do not hold resources. `0` disables. @default 12000
   */
  readonly keepAliveMs?: number;
}

const MIN_OUTBOUND_BUFFER_BYTES = 8 * 1024 * 1024;

/**
 * Outbound bytes a socket may queue before it is closed as a slow consumer: 8 MiB, or room for four
 * of the largest events (`EVENT_MAX_PAYLOAD_BYTES`, up to 16 MiB) when that is more — a fixed 8 MiB
 * closed every subscriber at the first frame after an event over it, and again after each resume.
 */
export function outboundBufferBytes(maxEventPayloadBytes: number): number {
  return Math.max(MIN_OUTBOUND_BUFFER_BYTES, 4 * maxEventPayloadBytes);
}

export interface GraphQLWebSocketServer {
  /** The upgrade paths it serves (`WEBSOCKET_PATHS`); the HTTP server answers 404 elsewhere. */
  readonly paths: readonly string[];
  /** Takes over an HTTP upgrade request for one of `paths`. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  readonly connectionCount: number;
  /** Closes every socket with `code` and waits (at most `timeoutMs`) until they are gone. Idempotent: the first call's arguments count. */
  close(code: number, reason: string, timeoutMs: number): Promise<void>;
}

/**
 * Where graphql-transport-ws upgrades are taken, alike: `/graphql`, beside GraphQL over HTTP (what
 * GraphiQL and the SDK use), and `/ws`, seed 004's plain WebSocket path (`wss://…/v1/ws` behind
 * its gateway).
 */
const WEBSOCKET_PATHS: readonly string[] = Object.freeze([GRAPHQL_PATH, '/ws']);

/** How long a socket closed to make room has to finish its closing handshake before it is cut, in ms. */
const EVICTED_CLOSE_MS = 1000;

/** The graphql-transport-ws endpoint: one `GraphQLWsConnection` per socket. */
export function createGraphQLWebSocketServer(options: GraphQLWebSocketServerOptions): GraphQLWebSocketServer {
  const logger = componentLogger(options.logger, 'ws');
  const server = new WebSocketServer({
    noServer: true,
    maxPayload: options.limits.wsMaxPayloadBytes,
    perMessageDeflate: false,
    // Accept the connection whatever the client offers; a missing subprotocol is then refused
    // with the protocol's own close code (4406) rather than a failed handshake.
    handleProtocols: (protocols) => (protocols.has(GRAPHQL_TRANSPORT_WS_PROTOCOL) ? GRAPHQL_TRANSPORT_WS_PROTOCOL : false),
  });
  const connections = new Map<WebSocket, GraphQLWsConnection>();
  // Development mode: every caller is the one development principal, so a quota per subject would be one for the whole server.
  const quota = createSubjectQuota(options.verifier.mode === 'development' ? undefined : options.limits.maxConnectionsPerSubject);
  const filterBudget = createFilterBudget(options.verifier.mode === 'development' ? undefined : options.limits.maxFilterBytesPerSubject);
  const places = createSocketPlaces<WebSocket>({
    max: options.limits.maxConnections,
    evict: (socket) => {
      options.metrics?.connectionsRefused.inc({ limit: 'waiting' });
      logger.debug({ limit: options.limits.maxConnections }, 'waiting socket closed to make room: WS_MAX_CONNECTIONS reached');
      connections.get(socket)?.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout: the instance needed the place');
      // It no longer counts: a client that never answers the close frame must not keep its socket
      // for ws's closing handshake (30 s), or sockets past WS_MAX_CONNECTIONS would pile up.
      setTimeout(() => socket.terminate(), EVICTED_CLOSE_MS).unref();
    },
  });
  const unanswered = new WeakSet<WebSocket>();
  let closing = false;
  let closed: Promise<void> | undefined;

  const keepAliveMs = options.keepAliveMs ?? 12_000;
  const keepAlive =
    keepAliveMs > 0
      ? setInterval(() => {
          for (const socket of connections.keys()) {
            if (unanswered.has(socket)) {
              logger.debug('socket did not answer ping; terminating');
              socket.terminate();
              continue;
            }
            unanswered.add(socket);
            socket.ping();
          }
        }, keepAliveMs)
      : undefined;
  keepAlive?.unref();

  server.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    // Room is made once the upgrade succeeded, not before: a malformed upgrade request must not
    // close anyone's socket. `hasRoom()` said yes just before (synchronously), so `placed` is false
    // only if that changed.
    const placed = places.add(socket);
    const connection = new GraphQLWsConnection(socket, request, {
      verifier: options.verifier,
      execute: options.execute,
      dispatcher: options.dispatcher,
      gateway: options.gateway,
      metrics: options.metrics,
      sessions: options.sessions,
      quota: acknowledging(socket),
      filterBudget,
      connectionInitTimeoutMs: options.limits.connectionInitTimeoutMs,
      tokenExpiryGraceMs: options.limits.tokenExpiryGraceMs,
      tokenExpiryNoticeMs: options.limits.tokenExpiryNoticeMs,
      maxOperations: options.limits.maxSubscriptionsPerConnection,
      maxOperationBytes: options.limits.maxSubscriptionBytesPerConnection,
      maxBufferedBytes: options.maxBufferedBytes ?? MIN_OUTBOUND_BUFFER_BYTES,
      rawFrames: options.rawFrames ?? true,
      logger,
    });
    connections.set(socket, connection);
    socket.on('pong', () => unanswered.delete(socket));
    socket.once('close', () => {
      connections.delete(socket);
      places.closed(socket);
    });
    if (!placed) connection.close(CloseCode.TryAgainLater, 'This instance holds its limit of sockets: try again later');
  });

  /**
   * The subject quota, telling `places` when `socket` is acknowledged: a connection takes its
   * principal's place right before it sends `connection_ack` (connection.ts), and only then.
   */
  function acknowledging(socket: WebSocket): SubjectQuota {
    return {
      take(principal) {
        const leave = quota.take(principal);
        if (leave) places.acknowledged(socket);
        return leave;
      },
    };
  }

  /** Closes every socket with `code`; past `timeoutMs` terminates those still open. */
  async function closeAll(code: number, reason: string, timeoutMs: number): Promise<void> {
    closing = true;
    clearInterval(keepAlive);
    const sockets = [...connections.keys()];
    const gone = Promise.all(
      sockets.map((socket) => new Promise<void>((resolve) => (socket.readyState === socket.CLOSED ? resolve() : socket.once('close', () => resolve())))),
    );
    for (const [, connection] of connections) connection.close(code, reason);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    if ((await Promise.race([gone, timedOut])) === 'timeout') {
      logger.warn({ remaining: connections.size }, 'sockets did not close in time; terminating');
      for (const socket of connections.keys()) socket.terminate();
    }
    clearTimeout(timer);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  return {
    paths: WEBSOCKET_PATHS,
    handleUpgrade(request, socket, head) {
      if (closing) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      // The upgrade completes synchronously (no verifyClient), so `places` holds every socket this one
      // would join. A full instance with a socket still waiting for its `connection_init` closes that
      // one instead (`places.add`): sockets without a token cannot keep authenticated clients out.
      if (!places.hasRoom()) {
        options.metrics?.connectionsRefused.inc({ limit: 'instance' });
        logger.warn({ limit: options.limits.maxConnections }, 'socket refused: WS_MAX_CONNECTIONS reached');
        const body = JSON.stringify({ errors: [{ message: `This instance holds its limit of ${options.limits.maxConnections} sockets`, extensions: { code: ErrorCode.RATE_LIMITED } }] });
        socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        return;
      }
      server.handleUpgrade(request, socket, head, (ws) => server.emit('connection', ws, request));
    },
    get connectionCount() {
      return connections.size;
    },
    close(code, reason, timeoutMs) {
      closed ??= closeAll(code, reason, timeoutMs);
      return closed;
    },
  };
}

