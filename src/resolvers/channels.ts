import { canAccessChannel, type ChannelAction } from '../auth/permissions.ts';
import { ErrorCode, TributaryError } from '../errors.ts';
import type { ChannelMessage } from '../pipeline/channels/channel-hub.ts';
import { guardedStream } from '../pipeline/dispatch/guarded-stream.ts';
import { assertName } from '../pipeline/names.ts';
import { scopeOf } from '../pipeline/scope.ts';
import type { ResolverContext } from './context.ts';
import { jsonWithin } from './json-input.ts';

export interface BroadcastInput {
  readonly channel: string;
  readonly event: string;
  readonly data?: unknown;
}

/**
 * Sends to the members of a channel in the caller's own scope; true once handed over. Then a
 * `gateway.broadcast` event names the channel and event (never the data) for webhooks. `data`
 * is held to `publish`'s payload limit here: every member would fail to receive what is refused.
 */
export async function broadcast(context: ResolverContext, input: BroadcastInput): Promise<boolean> {
  const channel = assertName('channel', input.channel);
  const event = assertName('event', input.event);
  assertAllowed(context, 'broadcast', channel);
  jsonWithin('data', input.data ?? null, context.services.limits.maxEventPayloadBytes);
  const scope = scopeOf(context.principal);
  await context.services.channels.broadcast(scope, { channel, event, data: input.data ?? null });
  context.services.gateway.emit({
    scope,
    connectionId: context.connectionId,
    subject: context.principal.subject,
    event: { type: 'gateway.broadcast', channel, event },
  });
  return true;
}

/**
 * Joins a channel in the caller's own scope. Unlike a topic's subscription, one without
 * permission is refused (FORBIDDEN), not left silent: a channel keeps nothing whose existence
 * the refusal could reveal. A refreshed token without the permission ends the membership.
 */
export async function joinChannel(context: ResolverContext, name: string): Promise<AsyncIterableIterator<ChannelMessage>> {
  const channel = assertName('channel', name);
  assertAllowed(context, 'join', channel);
  const messages = await context.services.channels.join(scopeOf(context.principal), channel);
  return guardedStream(messages, (next) => canAccessChannel(next, 'join', channel));
}

function assertAllowed(context: ResolverContext, action: ChannelAction, channel: string): void {
  if (canAccessChannel(context.principal, action, channel)) return;
  throw new TributaryError(
    ErrorCode.FORBIDDEN,
    `${action === 'join' ? 'Joining' : 'Broadcasting to'} "${channel}" needs the permission "<prefix>.${action}" for a prefix of the channel`,
    { details: { field: 'channel' } },
  );
}
