import { GraphQLError } from 'graphql';
import { ErrorCode, isClientFacing, type TributaryError } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** HTTP status for the codes that have one when they stop a request before execution. */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.UNAVAILABLE]: 503,
};

/** The client-facing form of a TributaryError: its message, code and details. */
export function toGraphQLError(error: TributaryError, located?: GraphQLError): GraphQLError {
  const status = HTTP_STATUS[error.code];
  return new GraphQLError(error.message, {
    ...(located && { nodes: located.nodes, source: located.source, positions: located.positions, path: located.path }),
    originalError: error,
    extensions: { ...error.details, code: error.code, ...(status !== undefined && { http: { status } }) },
  });
}

/**
 * Yoga's `maskError`: coded errors reach the client as they are; anything else is logged with
 * its cause and replaced by a generic INTERNAL_SERVER_ERROR, so internals never leak.
 */
export function createErrorMasker(logger: Logger) {
  return (error: unknown, message: string): Error => {
    const located = error instanceof GraphQLError ? error : undefined;
    const original = located?.originalError ?? error;
    if (isClientFacing(original)) return toGraphQLError(original, located);
    if (original instanceof GraphQLError && original.extensions['code'] !== undefined) return original;
    logger.error({ err: original, path: located?.path }, 'internal error');
    return new GraphQLError(message, {
      ...(located && { nodes: located.nodes, source: located.source, positions: located.positions, path: located.path }),
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    });
  };
}
