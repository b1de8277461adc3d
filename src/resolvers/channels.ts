import { canAccessChannel, type ChannelAction } from '../auth/permissions.ts';
import { badUserInput, ErrorCode, isTributaryError, TributaryError } from '../errors.ts';
import type { ChannelMessage, PresenceList } from '../pipeline/channels/channel-hub.ts';
import { isPresenceEvent } from '../pipeline/channels/channel-message.ts';
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
  // Presence messages are Tributary's: one sent by a client would forge a member's coming or going.
  if (isPresenceEvent(event)) throw badUserInput('event', `Events named "presence.…" are sent by Tributary only (presence); name the event otherwise`);
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
 * The member is listed in the channel's presence (subject, socket) while it stays; with
 * `presence` it receives the channel's `presence.joined` / `presence.left` messages, its own too.
 */
export async function joinChannel(context: ResolverContext, name: string, presence = false): Promise<AsyncIterableIterator<ChannelMessage>> {
  const channel = assertNameArgument(name);
  assertAllowed(context, 'join', channel, 'name');
  // A join is announced twice (joined, then left) to the channel's presence listeners: it costs
  // the subject two of its publishes, or a loop of joins would flood them with no bound.
  await context.services.subjectLimits.admitPublishes(context.principal, 2);
  const member = { subject: context.principal.subject, connectionId: context.connectionId };
  const messages = await context.services.channels.join(scopeOf(context.principal), channel, { member, presence });
  return guardedStream(messages, (next) => canAccessChannel(next, 'join', channel));
}

/** Members `channelMembers` lists by default, and at most. */
const DEFAULT_CHANNEL_MEMBERS = 100;
const MAX_CHANNEL_MEMBERS = 1_000;

export interface ChannelMembersArgs {
  readonly channel: string;
  readonly first?: number | null | undefined;
}

/**
 * Who is in a channel of the caller's own scope now, on every instance: the first `first` members
 * in the order they joined, and how many there are. Allowed to whoever may join it (FORBIDDEN
 * otherwise, like `channel`).
 */
export async function channelMembers(context: ResolverContext, args: ChannelMembersArgs): Promise<PresenceList & { readonly channel: string }> {
  const channel = assertName('channel', args.channel);
  assertAllowed(context, 'join', channel, 'channel');
  const first = args.first ?? DEFAULT_CHANNEL_MEMBERS;
  if (!Number.isInteger(first) || first < 0 || first > MAX_CHANNEL_MEMBERS) throw badUserInput('first', `first must be from 0 to ${MAX_CHANNEL_MEMBERS}`);
  return { channel, ...(await context.services.channels.members(scopeOf(context.principal), channel, first)) };
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
