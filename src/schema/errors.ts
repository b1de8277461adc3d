import { GraphQLError, isValueNode } from 'graphql';
import { ErrorCode, faultOf, isClientFacing, type TributaryError } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** HTTP status for the codes that have one when they stop a request before execution. */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.UNAVAILABLE]: 503,
};

/** The message clients see for anything that is not theirs to see. */
export const MASKED_MESSAGE = 'Unexpected error.';

/**
 * The client-facing form of a TributaryError: its message, code and details. A refusal that says
 * when to retry (`retryAfterMs`) also says it over HTTP, as `Retry-After` in whole seconds.
 */
export function toGraphQLError(error: TributaryError, located?: GraphQLError): GraphQLError {
  const status = HTTP_STATUS[error.code];
  const wait = error.details['retryAfterMs'];
  const headers = typeof wait === 'number' ? { 'Retry-After': String(Math.max(1, Math.ceil(wait / 1000))) } : undefined;
  return new GraphQLError(error.message, {
    ...locationOf(located),
    originalError: error,
    extensions: { ...error.details, code: error.code, ...(status !== undefined && { http: { status, ...(headers && { headers }) } }) },
  });
}

/**
 * Yoga's `maskError` (HTTP and WebSocket alike): client-facing errors reach the client as they
 * are; GraphQL's own request errors (variables of the wrong type or missing, unknown operation)
 * are the caller's mistake and keep their message as BAD_USER_INPUT; anything else — an
 * `InternalError`, a TributaryError coded INTERNAL_SERVER_ERROR, a thrown `Error` — is logged
 * with its cause and replaced by a generic INTERNAL_SERVER_ERROR, so internals never leak.
 */
export function createErrorMasker(logger: Logger) {
  return (error: unknown, message: string = MASKED_MESSAGE): Error => {
    const located = error instanceof GraphQLError ? error : undefined;
    const original = rootOf(error);
    if (isClientFacing(original)) return toGraphQLError(original, located);
    if (located && original instanceof GraphQLError) {
      if (located.extensions['code'] !== undefined) return located;
      if (original.extensions['code'] !== undefined) return original;
      // GraphQL's own error all the way down, and no path: raised before execution (variable
      // coercion, operation selection), so it describes the request, not the server — or raised
      // while executing at one of the document's values: an argument that passed validation but
      // not coercion with the request's variables (a `JSON` literal holding a variable the request
      // did not send); graphql-js keeps the scalar's reason to itself.
      const atValue = original.nodes?.[0];
      if (located.path === undefined || (atValue !== undefined && isValueNode(atValue))) {
        logger.debug({ err: located }, 'request refused before execution');
        return new GraphQLError(located.message, {
          ...locationOf(located),
          originalError: located,
          extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } },
        });
      }
    }
    logger.error({ err: original, fault: faultOf(original), path: located?.path }, 'internal error');
    return new GraphQLError(message, { ...locationOf(located), extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } });
  };
}

/** The innermost error: graphql-js wraps what a resolver or scalar threw in GraphQLErrors. */
function rootOf(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError !== undefined && current.originalError !== null) {
    current = current.originalError;
  }
  return current;
}

function locationOf(located: GraphQLError | undefined) {
  return located && { nodes: located.nodes, source: located.source, positions: located.positions, path: located.path };
}
