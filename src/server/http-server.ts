import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { ErrorCode } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createAdminUi, isAdminUiPath } from './admin-ui/admin-ui.ts';
import { developmentRefusal, type DevelopmentGuard } from './development-guard.ts';
import type { GraphQLPostHandler } from './graphql-post.ts';
import { readDeclaredBody, type RequestWithBody } from './request-body.ts';
import { API_PREFIX, type AdminApi } from './rest/admin-api.ts';
import { sendError, sendJson } from './rest/json-response.ts';
import type { GraphQLWebSocketServer } from './ws/websocket-server.ts';
import { GRAPHQL_PATH, type TributaryYoga } from './yoga.ts';

/** A dependency whose answer decides readiness (`GET /ready`). */
export interface ReadinessCheck {
  readonly name: string;
  /** Resolves when the dependency answers; rejects (or exceeds the timeout) when it does not. */
  check(): Promise<void>;
}

/** GraphQL over HTTP (yoga) and over WebSocket (the upgrade), both at `GRAPHQL_PATH`. */
export interface GraphQLEndpoints {
  readonly yoga: TributaryYoga;
  readonly webSocket: GraphQLWebSocketServer;
  /** The largest request body yoga takes (`HTTP_MAX_BODY_BYTES`). */
  readonly maxBodyBytes: number;
  /** Plain JSON POSTs of queries and mutations, run without yoga's Fetch layer (`graphql-post.ts`). */
  readonly post: GraphQLPostHandler;
}

export interface HttpServerOptions {
  /** Absent for a process that serves no GraphQL (the workers role): `/graphql` is then 404. */
  readonly graphql?: GraphQLEndpoints | undefined;
  /**
   * The REST routes under `/api/` (with GraphQL), and the admin UI that calls them (`/admin`,
   * `admin-ui/`); absent: `/api/…` and `/admin…` are 404.
   */
  readonly api?: AdminApi | undefined;
  readonly readiness: readonly ReadinessCheck[];
  /**
   * True once the process is stopping: `/ready` answers 503 (`{ ready: false, stopping: true }`)
   * without asking the dependencies, whatever they would say. @default never
   */
  readonly stopping?: (() => boolean) | undefined;
  /** Served at `GET /metrics` in the Prometheus text format. */
  readonly metrics: Registry;
  /** `METRICS_TOKEN`: when set, `/metrics` answers only `Authorization: Bearer <it>` (401 otherwise). */
  readonly metricsToken?: string | undefined;
  /** Set while every caller is the development principal: what `development-guard.ts` lets through. */
  readonly originGuard?: DevelopmentGuard | undefined;
  readonly logger: Logger;
  /** Time each readiness check may take, in ms. @default 2000 */
  readonly readinessTimeoutMs?: number;
  /**
   * How long an answer may wait for its client to take more of it, in ms: a connection whose
   * response has bytes queued of which the client has taken none for this long is destroyed
   * (`endUnreadAnswers`). @default UNREAD_ANSWER_TIMEOUT_MS
   */
  readonly unreadAnswerTimeoutMs?: number;
}

/** See `HttpServerOptions.unreadAnswerTimeoutMs`: a slow client is not cut while it takes some of its answer within every such period. */
export const UNREAD_ANSWER_TIMEOUT_MS = 30_000;

/**
 * Transport only: `/health`, `/ready` and `/metrics` answer here, `/graphql` goes to yoga (HTTP) or the
 * WebSocket server (upgrade) when the process serves GraphQL, `/api/…` to the REST routes beside it,
 * `/admin…` to the admin UI's static files with them, anything else is 404.
 */
export function createHttpServer(options: HttpServerOptions): Server {
  const timeoutMs = options.readinessTimeoutMs ?? 2000;
  const metricsAllowed = metricsAuthorization(options.metricsToken);
  const refusal = options.originGuard ? developmentRefusal(options.originGuard, options.logger) : () => undefined;
  const adminUi = options.api ? createAdminUi() : undefined;
  const unreadAnswerTimeoutMs = options.unreadAnswerTimeoutMs ?? UNREAD_ANSWER_TIMEOUT_MS;
  const server = createServer((request, response) => {
    endUnreadAnswers(response, unreadAnswerTimeoutMs);
    const path = pathOf(request);
    if (path === '/health' && isRead(request)) {
      sendJson(response, 200, { status: 'ok' });
    } else if (path === '/ready' && isRead(request) && options.stopping?.() === true) {
      sendJson(response, 503, { ready: false, stopping: true });
    } else if (path === '/ready' && isRead(request)) {
      readiness(options.readiness, timeoutMs).then(
        (report) => sendJson(response, report.ready ? 200 : 503, report),
        (error: unknown) => {
          options.logger.error({ err: error }, 'readiness check failed unexpectedly');
          sendJson(response, 503, { ready: false });
        },
      );
    } else if (path === '/metrics' && isRead(request) && !metricsAllowed(request)) {
      response.setHeader('www-authenticate', 'Bearer');
      sendError(response, 401, ErrorCode.UNAUTHENTICATED, 'Unauthorized: /metrics needs "Authorization: Bearer <METRICS_TOKEN>"');
    } else if (path === '/metrics' && isRead(request)) {
      options.metrics.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': options.metrics.contentType });
          response.end(text);
        },
        (error: unknown) => {
          options.logger.error({ err: error }, 'metrics collection failed');
          sendError(response, 500, ErrorCode.INTERNAL_SERVER_ERROR, 'metrics unavailable');
        },
      );
    } else if (isAdminUiPath(path) && adminUi) {
      // Static files, no caller's data: the development guard is for the API the page then calls.
      adminUi.handle(request, response, path);
    } else if (path.startsWith(API_PREFIX) || path === GRAPHQL_PATH) {
      const refused = refusal(request, path);
      if (refused !== undefined) {
        sendJson(response, 403, { errors: [{ message: refused, extensions: { code: ErrorCode.FORBIDDEN } }] });
      } else if (path.startsWith(API_PREFIX) && options.api) {
        options.api.handle(request, response);
      } else if (path === GRAPHQL_PATH && options.graphql) {
        serveGraphQL(options.graphql, request, response, options.logger);
      } else {
        sendError(response, 404, ErrorCode.NOT_FOUND, 'Not found');
      }
    } else {
      sendError(response, 404, ErrorCode.NOT_FOUND, 'Not found');
    }
  });

  server.on('upgrade', (request: IncomingMessage, socket, head: Buffer) => {
    // `/graphql` and `/ws` (seed 004's path) alike: one WebSocket server, one set of rules.
    const path = pathOf(request);
    const webSocket = options.graphql?.webSocket;
    if (!webSocket?.paths.includes(path)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (refusal(request, path) !== undefined) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    webSocket.handleUpgrade(request, socket, head);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    options.logger.debug({ err: error }, 'malformed HTTP request');
    // A reset socket has nobody to answer. A socket still owing the response to an earlier request
    // (pipelined) is closed unanswered: an error written now would be read as that response.
    const owed = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || error.code === 'ECONNRESET' || (owed !== undefined && owed !== null)) {
      socket.destroy();
      return;
    }
    socket.end(clientErrorResponse(error.code));
  });
  return server;
}

/**
 * Destroys the connection of an answer its client does not take. Node bounds receiving a request
 * (`headersTimeout`, `requestTimeout`), not sending its answer, and gives sockets no timeout
 * (`server.timeout` 0): a client that stops reading kept its answer in this process's memory for as
 * long as it kept the connection open (20 unread `documents` pages: 3.4 GiB). The socket's timeout
 * counts inactivity — data read, a write completed, and a write in progress that moved on (Node
 * compares its queue) are activity — so when it passes with bytes still queued, the client took
 * none of them for that long. A timeout with nothing queued (the answer still being worked out, a
 * quiet event stream) ends nothing: with this listener Node leaves the socket to it. The next
 * request on a kept-alive connection sets its own; between requests, `keepAliveTimeout` holds.
 */
function endUnreadAnswers(response: ServerResponse, timeoutMs: number): void {
  response.setTimeout(timeoutMs, () => {
    const { socket } = response;
    if (socket !== null && socket.writableLength > 0) socket.destroy();
  });
}

/**
 * Whether a `/metrics` request may be answered: always without `METRICS_TOKEN`, else only with the
 * token as a bearer. Compared as SHA-256 digests with `timingSafeEqual`: equal lengths, and no
 * timing that tells how much of a guess was right.
 */
function metricsAuthorization(token: string | undefined): (request: IncomingMessage) => boolean {
  if (token === undefined) return () => true;
  const expected = createHash('sha256').update(token).digest();
  return (request) => {
    const presented = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
    return presented !== undefined && timingSafeEqual(createHash('sha256').update(presented).digest(), expected);
  };
}

/**
 * A POST's body is read ahead when its length allows (`request-body.ts`); a plain query or
 * mutation is then served by the POST path, anything else by yoga.
 */
function serveGraphQL(graphql: GraphQLEndpoints, request: RequestWithBody, response: ServerResponse, logger: Logger): void {
  const reading = request.method === 'POST' ? readDeclaredBody(request, graphql.maxBodyBytes) : undefined;
  if (!reading) {
    void graphql.yoga.requestListener(request, response);
    return;
  }
  void reading.then(async (body) => {
    // Undefined: the client went away mid-body; nobody is left to answer.
    if (body === undefined) return;
    try {
      if (await graphql.post(request, response, body)) return;
    } catch (error) {
      // It failed while executing (a refusal would have left the request to yoga): as yoga answers an unexpected error.
      logger.error({ err: error }, 'graphql request failed');
      if (!response.headersSent) sendJson(response, 500, { errors: [{ message: 'Unexpected error.', extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } }] });
      return;
    }
    request.body = body;
    void graphql.yoga.requestListener(request, response);
  });
}

/**
 * The raw response to a request Node's parser refused (before yoga sees it): headers over
 * `--max-http-header-size` (e.g. a huge bearer token) are 431, a request not received within the
 * server's timeouts 408, anything else malformed 400.
 */
export function clientErrorResponse(parserCode: string | undefined): string {
  const [status, message] =
    parserCode === 'HPE_HEADER_OVERFLOW'
      ? ['431 Request Header Fields Too Large', 'Request headers are too large']
      : parserCode === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['408 Request Timeout', 'The request was not received in time']
        : ['400 Bad Request', 'Malformed HTTP request'];
  const body = JSON.stringify({ errors: [{ message, extensions: { code: ErrorCode.BAD_USER_INPUT } }] });
  return (
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Record<string, 'ok' | 'failing'>;
}

async function readiness(checks: readonly ReadinessCheck[], timeoutMs: number): Promise<ReadinessReport> {
  const outcomes = await Promise.all(
    checks.map(async (check) => [check.name, (await withTimeout(check.check(), timeoutMs)) ? 'ok' : 'failing'] as const),
  );
  return { ready: outcomes.every(([, outcome]) => outcome === 'ok'), checks: Object.fromEntries(outcomes) };
}

async function withTimeout(work: Promise<void>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([work.then(() => true, () => false), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function isRead(request: IncomingMessage): boolean {
  return request.method === 'GET' || request.method === 'HEAD';
}
