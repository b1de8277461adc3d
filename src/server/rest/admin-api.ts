/**
 * The REST routes the seed names, beside GraphQL for what is conventionally polled over HTTP
 * (`GET /api/metrics/hot-topics`). Same bearer token and verification as GraphQL, same resolvers
 * and admin check; errors as `{ errors: [{ message, extensions: { code } }] }` with the stable
 * codes (401 UNAUTHENTICATED, 403 FORBIDDEN, 400 BAD_USER_INPUT, 404 NOT_FOUND).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenVerifier } from '../../auth/token-verifier.ts';
import { ErrorCode, faultOf, isClientFacing, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { hotTopics, type HotTopicsWindow } from '../../resolvers/analytics.ts';
import type { Services } from '../../resolvers/context.ts';
import type { HotTopicsOrder } from '../../pipeline/analytics/analytics-reader.ts';
import { MASKED_MESSAGE } from '../../schema/errors.ts';

/** Every REST route lives under this prefix. */
export const API_PREFIX = '/api/';

export interface AdminApi {
  /** Answers a request whose path starts with `API_PREFIX`. */
  handle(request: IncomingMessage, response: ServerResponse): void;
}

export interface AdminApiOptions {
  readonly verifier: TokenVerifier;
  readonly services: Services;
  readonly logger: Logger;
}

const WINDOWS: Readonly<Record<string, HotTopicsWindow>> = { '1m': 'oneMinute', '15m': 'fifteenMinutes', '1h': 'oneHour' };
const ORDERS: Readonly<Record<string, HotTopicsOrder>> = { events: 'events', fanout: 'fanout', latency_p99: 'latencyP99', bytes: 'bytes' };

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.BAD_USER_INPUT]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.RATE_LIMITED]: 429,
};

export function createAdminApi(options: AdminApiOptions): AdminApi {
  const logger = options.logger.child({ component: 'rest' });

  const hotTopicsRoute = async (request: IncomingMessage, query: URLSearchParams): Promise<unknown> => {
    const principal = await options.verifier.verify(request.headers.authorization);
    const windowName = query.get('window') ?? '1m';
    const byName = query.get('by') ?? 'events';
    const window = WINDOWS[windowName];
    const by = ORDERS[byName];
    if (!window) throw badInput('window', 'window must be 1m, 15m or 1h');
    if (!by) throw badInput('by', 'by must be events, fanout, latency_p99 or bytes');
    const limitText = query.get('limit');
    const limit = limitText === null ? 10 : Number(limitText);
    const topics = await hotTopics({ principal, services: options.services, connectionId: undefined }, { window, by, limit, tenant: query.get('tenant') });
    return { window: windowName, by: byName, topics };
  };

  return {
    handle(request, response) {
      const url = new URL(request.url ?? '/', 'http://localhost');
      if (url.pathname !== '/api/metrics/hot-topics') {
        sendJson(response, 404, errorBody('Not found', ErrorCode.NOT_FOUND));
        return;
      }
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.setHeader('allow', 'GET, HEAD');
        sendJson(response, 405, errorBody('Only GET is allowed here', ErrorCode.BAD_USER_INPUT));
        return;
      }
      hotTopicsRoute(request, url.searchParams).then(
        (body) => sendJson(response, 200, body),
        (error: unknown) => {
          if (isClientFacing(error)) {
            sendJson(response, STATUS[error.code] ?? 400, errorBody(error.message, error.code));
            return;
          }
          logger.error({ err: error, fault: faultOf(error), path: url.pathname }, 'REST request failed');
          sendJson(response, 500, errorBody(MASKED_MESSAGE, ErrorCode.INTERNAL_SERVER_ERROR));
        },
      );
    },
  };
}

function badInput(field: string, message: string): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: { field } });
}

function errorBody(message: string, code: ErrorCode) {
  return { errors: [{ message, extensions: { code } }] };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  response.end(text);
}
