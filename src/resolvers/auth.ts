import { ErrorCode, TributaryError } from '../errors.ts';
import type { AuthRefresh, ResolverContext } from './context.ts';

/**
 * `refreshAuth(token)` (issue 13 §2): hands the WebSocket this mutation arrives on a new token of
 * the same subject and tenant; its expiry moves and its subscriptions are checked again. Over HTTP
 * there is no socket to act on: refused with WEBSOCKET_ONLY (send the new token with each request).
 */
export function refreshAuth(context: ResolverContext, token: string): Promise<AuthRefresh> {
  if (context.connectionId === undefined) {
    throw new TributaryError(
      ErrorCode.WEBSOCKET_ONLY,
      'refreshAuth applies to the WebSocket it is sent on; over HTTP, send the new token in the Authorization header of each request',
    );
  }
  return context.services.sockets.refreshAuth(context.connectionId, token);
}
