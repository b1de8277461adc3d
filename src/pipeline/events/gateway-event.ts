/**
 * Gateway lifecycle events (source `socket`, seed 000 "Gateway event (connect, disconnect,
 * subscribe, broadcast)"): what happens on the sockets, for webhooks, analytics and alerts — not
 * for other clients' subscriptions, so they carry no message of anyone's. Types are
 * `gateway.connected`, `gateway.disconnected`, `gateway.subscribed` and `gateway.broadcast`; the
 * scope is the socket's principal's. Payload: `{ connectionId, subject }` plus, by type, the
 * close `code`, the subscription's `field` and `topic`, or the broadcast's `channel` and `event`
 * (never its data). A broadcast sent over HTTP has no connection: no `connectionId`, no entity.
 */
import type { RawEventInput } from './envelope.ts';
import type { Scope } from '../scope.ts';

export type GatewayEvent =
  | { readonly type: 'gateway.connected' }
  | { readonly type: 'gateway.disconnected'; readonly code: number }
  | { readonly type: 'gateway.subscribed'; readonly field: string; readonly topic: string | undefined }
  | { readonly type: 'gateway.broadcast'; readonly channel: string; readonly event: string };

// A type alias, not an interface: it must be assignable to the envelope's JSON-object payload.
export type GatewayEventPayload = {
  /** The socket's id, for correlating one connection's events; absent for a broadcast over HTTP. */
  readonly connectionId?: string;
  readonly subject: string;
  readonly code?: number;
  readonly field?: string;
  readonly topic?: string;
  readonly channel?: string;
  readonly event?: string;
};

export interface GatewayEventInput {
  readonly scope: Scope;
  /** Undefined only for a broadcast sent over HTTP. */
  readonly connectionId: string | undefined;
  readonly subject: string;
  readonly event: GatewayEvent;
}

/** A gateway event on the topic named by its type (`gateway.connected`, …), one entity per connection. */
export function gatewayEvent(input: GatewayEventInput): RawEventInput {
  const { type, ...details } = input.event;
  const { connectionId } = input;
  // Without the keys left undefined (a subscription without a topic): the log keeps what JSON keeps.
  const payload = Object.fromEntries(
    Object.entries({ connectionId, subject: input.subject, ...details }).filter(([, value]) => value !== undefined),
  ) as GatewayEventPayload;
  return { source: 'socket', topic: type, type, scope: input.scope, ...(connectionId !== undefined && { entity: connectionId }), payload };
}
