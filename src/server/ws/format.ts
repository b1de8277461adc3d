import type { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';
import type { MessageType, ID } from 'graphql-ws';
import { ErrorCode, type TributaryError } from '../../errors.ts';

/**
 * Errors as the socket sends them: their JSON form without `extensions.http`, which only means
 * something to the HTTP transport (yoga strips it there; the socket must too).
 */
export function formatError(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (formatted.extensions?.['http'] === undefined) return formatted;
  const { http: _http, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

/** A result as the socket sends it; results without errors pass through untouched. */
export function formatResult(result: ExecutionResult): ExecutionResult | (Omit<ExecutionResult, 'errors'> & { errors: GraphQLFormattedError[] }) {
  if (!result.errors || result.errors.length === 0) return result;
  return { ...result, errors: result.errors.map(formatError) };
}

/** A coded error as the payload of an `error` message. */
export function codedErrors(error: TributaryError): GraphQLFormattedError[] {
  return [{ message: error.message, extensions: { ...error.details, code: error.code } }];
}

/** Every message the server sends on a socket. */
export type OutgoingMessage =
  | { readonly type: typeof MessageType.ConnectionAck }
  | { readonly type: typeof MessageType.Pong; readonly payload?: Readonly<Record<string, unknown>> }
  | { readonly type: typeof MessageType.Ping; readonly payload?: Readonly<Record<string, unknown>> }
  | { readonly id: ID; readonly type: typeof MessageType.Next; readonly payload: ReturnType<typeof formatResult> }
  | { readonly id: ID; readonly type: typeof MessageType.Error; readonly payload: readonly GraphQLFormattedError[] }
  | { readonly id: ID; readonly type: typeof MessageType.Complete };

/** The `error` that ends a subscription whose read permission a refreshed token no longer grants. */
export const PERMISSION_REVOKED: readonly GraphQLFormattedError[] = [
  { message: 'The refreshed token may no longer read this subscription', extensions: { code: ErrorCode.FORBIDDEN, reason: 'PERMISSION_REVOKED' } },
];
