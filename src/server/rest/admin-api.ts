/**
 * The REST routes the seed names, beside GraphQL, for what is conventionally polled over HTTP
 * (`GET /api/alerts`, `GET /api/metrics/dashboard`, `GET /api/metrics/hot-topics`). Same bearer token and verification as
 * GraphQL, the same resolvers and so the same admin check — made here first, before any parameter
 * is read; `GET` only. Errors as GraphQL writes
 * them — `{ errors: [{ message, extensions: { code, …details } }] }` — with the stable codes and
 * their HTTP statuses (401 UNAUTHENTICATED, 403 FORBIDDEN, 400 BAD_USER_INPUT, 404 NOT_FOUND).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenVerifier } from '../../auth/token-verifier.ts';
import { ErrorCode, faultOf, isClientFacing, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { Services } from '../../resolvers/context.ts';
import { requireAdmin } from '../../resolvers/require-admin.ts';
import { MASKED_MESSAGE } from '../../schema/errors.ts';
import { alertsRoute } from './alerts-route.ts';
import { dashboardRoute } from './dashboard-route.ts';
import { hotTopicsRoute } from './hot-topics-route.ts';
import { sendJson } from './json-response.ts';
import type { RestRoute } from './rest-route.ts';

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

const ROUTES: Readonly<Record<string, RestRoute>> = {
  '/api/alerts': alertsRoute,
  '/api/metrics/dashboard': dashboardRoute,
  '/api/metrics/hot-topics': hotTopicsRoute,
};

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.BAD_USER_INPUT]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.RATE_LIMITED]: 429,
};

export function createAdminApi(options: AdminApiOptions): AdminApi {
  const logger = componentLogger(options.logger, 'rest');

  const answer = async (route: RestRoute, request: IncomingMessage, query: URLSearchParams): Promise<unknown> => {
    const principal = await options.verifier.verify(request.headers.authorization);
    // The role before the parameters: every route here is an admin's, and a caller without the
    // role must get 403 whatever it sends — a 400 for `?window=2m` would tell it what the route
    // accepts. The resolvers check it again (and the finer rules: tenant, operators).
    requireAdmin(principal);
    return route({ principal, services: options.services, connectionId: undefined }, query);
  };

  return {
    handle(request, response) {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const route = ROUTES[url.pathname];
      if (!route) {
        sendJson(response, 404, errorBody(new TributaryError(ErrorCode.NOT_FOUND, 'Not found')));
        return;
      }
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.setHeader('allow', 'GET, HEAD');
        sendJson(response, 405, errorBody(new TributaryError(ErrorCode.BAD_USER_INPUT, 'Only GET is allowed here')));
        return;
      }
      answer(route, request, url.searchParams).then(
        (body) => sendJson(response, 200, body),
        (error: unknown) => {
          if (isClientFacing(error)) {
            sendJson(response, STATUS[error.code] ?? 400, errorBody(error));
            return;
          }
          logger.error({ err: error, fault: faultOf(error), path: url.pathname }, 'REST request failed');
          sendJson(response, 500, { errors: [{ message: MASKED_MESSAGE, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } }] });
        },
      );
    },
  };
}

function errorBody(error: TributaryError) {
  return { errors: [{ message: error.message, extensions: { code: error.code, ...error.details } }] };
}
