/**
 * The connection's states and the one function that moves between them (pure, unit-tested).
 *
 * - `connecting`: the first attempt (or the first after `reconnect()`), no socket acknowledged yet.
 * - `connected`: a socket is acknowledged; subscriptions run on it.
 * - `reconnecting`: the socket was lost (or an attempt failed); waiting for the next attempt or
 *   making it. Subscriptions keep their cursors and resume when it is back.
 * - `resyncing`: connected, and at least one subscription is refetching its snapshot after the
 *   server answered RESYNC_REQUIRED (its cursor could not be resumed).
 * - `offline`: the browser says it has no network: no attempts until it is back (`online`).
 * - `unauthorized`: the server refused the token (4403), or a refresh changed the principal
 *   (4412): no more attempts until `client.reconnect()`.
 * - `closed`: `client.close()` was called; final.
 */

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'resyncing' | 'offline' | 'unauthorized' | 'closed';

export interface ConnectionStatus {
  readonly state: ConnectionState;
  /** Subscriptions refetching a snapshot now. */
  readonly resyncs: number;
}

export type ConnectionEvent =
  | { readonly type: 'acknowledged' }
  /** `disposition`: how the connection handles the close, when it is not what `closeDisposition(code)` says. */
  | { readonly type: 'lost'; readonly code: number; readonly disposition?: CloseDisposition }
  | { readonly type: 'offline' }
  | { readonly type: 'online' }
  | { readonly type: 'resync-started' }
  | { readonly type: 'resync-finished' }
  | { readonly type: 'reconnect' }
  | { readonly type: 'close' };

/** What a close code means to the client. */
export type CloseDisposition = 'unauthorized' | 'new-token' | 'retry';

/**
 * The server's close codes (its README, "Errors and close codes"): 4403 a token missing or
 * invalid at `connection_init` (older servers: or expired); 4412 a refresh with another subject
 * or tenant; 4401 an operation before `connection_ack` (graphql-ws treats it as fatal too). 4419
 * is an expiry without a refresh: reconnect at once with a token from `getToken` (a 4419 before
 * `connection_ack`, a token already expired at connect, is retried with backoff instead, as the
 * connection retries a 4403 that refuses that same token again: an auth library whose clock runs
 * behind still hands it out; and, a few times, a 4403 for a token expired by the device's clock
 * after a socket lost otherwise). Anything else — a restart (1001), a lost network (1006), too
 * many sockets of this principal (1013), a slow consumer (4008), a fault of the server (4500), a dead socket
 * we terminated (4499) — is retried with backoff.
 */
export function closeDisposition(code: number): CloseDisposition {
  if (code === 4403 || code === 4412 || code === 4401) return 'unauthorized';
  if (code === 4419) return 'new-token';
  return 'retry';
}

export const INITIAL_STATUS: ConnectionStatus = { state: 'connecting', resyncs: 0 };

export function nextStatus(status: ConnectionStatus, event: ConnectionEvent): ConnectionStatus {
  const { state, resyncs } = status;
  if (state === 'closed') return status;
  switch (event.type) {
    case 'close':
      return { state: 'closed', resyncs: 0 };
    case 'reconnect':
      return { state: 'connecting', resyncs: 0 };
    case 'acknowledged':
      if (state === 'unauthorized') return status;
      return { state: resyncs > 0 ? 'resyncing' : 'connected', resyncs };
    case 'lost':
      if (state === 'unauthorized') return status;
      return { state: (event.disposition ?? closeDisposition(event.code)) === 'unauthorized' ? 'unauthorized' : 'reconnecting', resyncs };
    case 'offline':
      return state === 'unauthorized' ? status : { state: 'offline', resyncs };
    case 'online':
      return state === 'offline' ? { state: 'reconnecting', resyncs } : status;
    case 'resync-started':
      return { state: state === 'connected' ? 'resyncing' : state, resyncs: resyncs + 1 };
    case 'resync-finished': {
      const left = Math.max(0, resyncs - 1);
      return { state: state === 'resyncing' && left === 0 ? 'connected' : state, resyncs: left };
    }
  }
}
