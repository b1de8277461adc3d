import { canAccessChannel, type ChannelAction } from '../auth/permissions.ts';
import { ErrorCode, isTributaryError, TributaryError } from '../errors.ts';
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
  assertAllowed(context, 'broadcast', channel, 'channel');
  jsonWithin('data', input.data ?? null, context.services.limits.maxEventPayloadBytes);
  // One budget with `publish`: a broadcast costs its members what an event costs its subscribers.
  await context.services.subjectLimits.admitPublishes(context.principal);
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
  const channel = assertNameArgument(name);
  assertAllowed(context, 'join', channel, 'name');
  const messages = await context.services.channels.join(scopeOf(context.principal), channel);
  return guardedStream(messages, (next) => canAccessChannel(next, 'join', channel));
}

/**
 * The argument that names the channel: `broadcast(channel:)` but `channel(name:)`. Errors name it
 * in `extensions.field`, which a client maps back to its own input.
 */
type ChannelArgument = 'channel' | 'name';

/** `assertName` for `channel(name:)`: the error is about a channel name, held in the argument `name`. */
function assertNameArgument(name: string): string {
  try {
    return assertName('channel', name);
  } catch (error) {
    if (!isTributaryError(error)) throw error;
    throw new TributaryError(error.code, error.message, { details: { ...error.details, field: 'name' } });
  }
}

function assertAllowed(context: ResolverContext, action: ChannelAction, channel: string, field: ChannelArgument): void {
  if (canAccessChannel(context.principal, action, channel)) return;
  throw new TributaryError(
    ErrorCode.FORBIDDEN,
    `${action === 'join' ? 'Joining' : 'Broadcasting to'} "${channel}" needs the permission "<prefix>.${action}" for a prefix of the channel`,
    { details: { field } },
  );
}
