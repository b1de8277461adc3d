import type { ChannelMessage } from '../pipeline/channels/channel-hub.ts';
import { assertName } from '../pipeline/names.ts';
import { scopeOf } from '../pipeline/scope.ts';
import type { ResolverContext } from './context.ts';

export interface BroadcastInput {
  readonly channel: string;
  readonly event: string;
  readonly data?: unknown;
}

/** Sends to the members of a channel in the caller's own scope; true once handed over. */
export async function broadcast(context: ResolverContext, input: BroadcastInput): Promise<boolean> {
  const channel = assertName('channel', input.channel);
  const event = assertName('event', input.event);
  await context.services.channels.broadcast(scopeOf(context.principal), { channel, event, data: input.data ?? null });
  return true;
}

/** Joins a channel in the caller's own scope. */
export function joinChannel(context: ResolverContext, name: string): Promise<AsyncIterableIterator<ChannelMessage>> {
  return context.services.channels.join(scopeOf(context.principal), assertName('channel', name));
}
