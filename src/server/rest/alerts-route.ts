/**
 * `GET /api/alerts` (the seed's Alert Center endpoint): the alerts of the caller's environment as
 * JSON, with the same bearer token and admin check as GraphQL. `?status=firing,acknowledged`,
 * `?severity=critical`, `?first=50`, `?after=<endCursor>`. Errors are JSON with a stable code:
 * 401 UNAUTHENTICATED, 403 FORBIDDEN, 400 BAD_USER_INPUT.
 */
import type { IncomingMessage } from 'node:http';
import { isAdmin } from '../../auth/principal.ts';
import type { TokenVerifier } from '../../auth/token-verifier.ts';
import { ErrorCode, isTributaryError, type TributaryError } from '../../errors.ts';
import type { AlertState, Severity } from '../../pipeline/alerts/alert-rule.ts';
import { scopeOf } from '../../pipeline/scope.ts';
import { viewOf } from '../../resolvers/alerts.ts';
import type { Services } from '../../resolvers/context.ts';
import type { RestRoute } from '../http-server.ts';

export const ALERTS_PATH = '/api/alerts';

const STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved'];
const SEVERITIES: readonly Severity[] = ['warning', 'critical'];
const STATUS: Partial<Record<string, number>> = { [ErrorCode.UNAUTHENTICATED]: 401, [ErrorCode.FORBIDDEN]: 403, [ErrorCode.BAD_USER_INPUT]: 400 };

type Answer = { readonly status: number; readonly body: unknown };

function failure(status: number, code: string, message: string, details?: Readonly<Record<string, unknown>>): Answer {
  return { status, body: { error: { code, message, ...details } } };
}

/** A comma-separated list of allowed values, lower case; undefined when absent. */
function listParam<T extends string>(params: URLSearchParams, name: string, allowed: readonly T[]): T[] | undefined | Answer {
  const raw = params.get(name);
  if (raw === null || raw.trim() === '') return undefined;
  const values = raw.split(',').map((value) => value.trim().toLowerCase());
  const wrong = values.find((value) => !(allowed as readonly string[]).includes(value));
  if (wrong !== undefined) return failure(400, ErrorCode.BAD_USER_INPUT, `${name} must be any of ${allowed.join(', ')} (got "${wrong}")`, { field: name });
  return values as T[];
}

const isAnswer = (value: unknown): value is Answer => typeof value === 'object' && value !== null && 'status' in value && 'body' in value;

export function alertsRoute(options: { readonly verifier: TokenVerifier; readonly services: Pick<Services, 'alerts'> }): RestRoute {
  return {
    path: ALERTS_PATH,
    async handle(request: IncomingMessage): Promise<Answer> {
      let principal;
      try {
        principal = await options.verifier.verify(request.headers.authorization);
      } catch (error) {
        if (isTributaryError(error)) return failure(401, error.code, error.message);
        throw error;
      }
      if (!isAdmin(principal)) return failure(403, ErrorCode.FORBIDDEN, 'This operation needs the admin role');
      const params = new URL(request.url ?? '/', 'http://localhost').searchParams;
      const states = listParam(params, 'status', STATES);
      if (isAnswer(states)) return states;
      const severities = listParam(params, 'severity', SEVERITIES);
      if (isAnswer(severities)) return severities;
      const first = params.get('first');
      try {
        const page = await options.services.alerts.list(scopeOf(principal), {
          states,
          severities,
          first: first === null ? undefined : Number(first),
          after: params.get('after') ?? undefined,
        });
        return { status: 200, body: { alerts: page.nodes.map(viewOf), endCursor: page.endCursor, hasNextPage: page.hasNextPage } };
      } catch (error) {
        const status = isTributaryError(error) ? STATUS[error.code] : undefined;
        if (status === undefined) throw error;
        const coded = error as TributaryError;
        return failure(status, coded.code, coded.message, coded.details);
      }
    },
  };
}
