/**
 * The process's HTTP listener: `/health`, `/ready` and `/metrics` in every role, GraphQL (HTTP and
 * the WebSocket upgrade) when the role serves it.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { isIPv6, type AddressInfo, type Socket } from 'node:net';
import { ErrorCode, TributaryError } from '../errors.ts';
import { createHttpServer, type GraphQLEndpoints, type ReadinessCheck } from '../server/http-server.ts';
import type { AdminApi } from '../server/rest/admin-api.ts';
import type { Clients } from './clients.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Listening {
  /** `http://host:port` the process listens on. */
  readonly url: string;
  readonly port: number;
}

export interface ListenParts {
  /** Absent in the workers role: only the operational endpoints are served. */
  readonly graphql?: GraphQLEndpoints;
  /** The admin REST routes beside GraphQL (`/api/…`; server roles). */
  readonly api?: AdminApi;
  readonly readiness: readonly ReadinessCheck[];
}

/**
 * At shutdown, how long the connections that are not answering a request — idle, or holding part
 * of one (a preconnect, a load balancer's TCP check, a slow client) — are left to close by
 * themselves, in ms (at most a tenth of `SHUTDOWN_TIMEOUT_MS`); then they are cut.
 */
const HTTP_DRAIN_GRACE_MS = 1000;

/**
 * How long a request under way at shutdown may take to be answered before its connection is cut
 * too, in ms (at most a quarter of `SHUTDOWN_TIMEOUT_MS`, which the steps after this one need too):
 * cut, a publish it had placed would look failed to its client.
 */
const HTTP_ANSWER_LIMIT_MS = 5000;

export async function listen({ config, metrics, logger }: Pick<StartContext, 'config' | 'metrics' | 'logger'>, parts: ListenParts): Promise<Listening & Disposable> {
  // Set as the shutdown begins: `/ready` then answers 503 on a connection still open, so a load
  // balancer that probes over keep-alive takes the instance out too.
  let stopping = false;
  const server = createHttpServer({
    ...parts,
    stopping: () => stopping,
    metrics: metrics.registry,
    metricsToken: config.metricsToken,
    // Every caller is the admin development principal: a page of another origin, or of a name
    // pointed at this server (DNS rebinding), must not be able to act as it.
    ...(config.auth.mode === 'development' && { originGuard: { origins: config.cors.origins, host: config.host } }),
    logger,
  });
  // Connections of this listener (not those upgraded to a WebSocket: the socket server closes
  // them), and those answering a request now.
  const connections = new Set<Socket>();
  const answering = new Map<Socket, ServerResponse>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  server.on('upgrade', (_request, socket: Socket) => connections.delete(socket));
  server.prependListener('request', (request, response) => {
    // Stopping: every answer closes its connection, which a client then opens elsewhere.
    if (stopping) response.setHeader('Connection', 'close');
    const { socket } = request;
    answering.set(socket, response);
    response.once('close', () => {
      answering.delete(socket);
      // Answered while stopping: its connection goes with it (a stop after its headers went kept it alive).
      if (stopping) socket.end();
    });
  });
  server.listen(config.port, config.host);
  try {
    await once(server, 'listening');
  } catch (error) {
    // EADDRINUSE, EADDRNOTAVAIL, a host name that does not resolve: say which settings to look at.
    throw new TributaryError(ErrorCode.MISCONFIGURED, `Cannot listen on HOST=${config.host} PORT=${config.port}: ${(error as Error).message}`, { cause: error });
  }
  const { port } = server.address() as AddressInfo;
  const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${isIPv6(shown) ? `[${shown}]` : shown}:${port}`,
    port,
    dispose() {
      closing ??= new Promise<void>((resolve) => {
        stopping = true;
        for (const response of answering.values()) if (!response.headersSent) response.setHeader('Connection', 'close');
        // Node counts a connection that sent nothing yet, or part of a request, as busy: close()
        // would wait for it until the shutdown deadline. Such connections, and keep-alive ones
        // between requests, get a grace period; a request under way is answered (its connection
        // then closes: `Connection: close`), up to a limit.
        const cutIdle = () => {
          for (const socket of connections) if (!answering.has(socket)) socket.destroy();
        };
        const grace = setTimeout(cutIdle, Math.min(HTTP_DRAIN_GRACE_MS, config.shutdownTimeoutMs / 10));
        const limit = setTimeout(() => server.closeAllConnections(), Math.min(HTTP_ANSWER_LIMIT_MS, config.shutdownTimeoutMs / 4));
        server.close(() => {
          clearTimeout(grace);
          clearTimeout(limit);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** What `/ready` asks: the platform database and, when configured, Redis. */
export function readinessChecks(clients: Clients): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [{ name: 'database', check: () => clients.db.ping() }];
  const redis = clients.redis?.command;
  if (redis) checks.push({ name: 'redis', check: async () => void (await redis.ping()) });
  return checks;
}

/**
 * A readiness check that fails until `started()` is called: for a process whose listener opens
 * before its work runs (the workers role serves `/health` and `/metrics` while its workers start,
 * and `/ready` must not say 200 before they do).
 */
export function startupCheck(name: string): ReadinessCheck & { started(): void } {
  let started = false;
  return {
    name,
    check: () => (started ? Promise.resolve() : Promise.reject(new TributaryError(ErrorCode.UNAVAILABLE, `${name} not started yet`))),
    started: () => void (started = true),
  };
}
