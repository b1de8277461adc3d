/**
 * What travels on a channel and names one. Terminology:
 * - channel key: `scopeKey(scope)|name` — unique per scope and name, the unit a transport
 *   subscribes to and presence lists members of (isolation is structural, like a stream's key);
 * - member: one `channel` subscription (a socket may hold two of the same channel);
 * - presence: the channel's listed members, and the `presence.joined` / `presence.left` messages
 *   that announce them to the members who asked (`presence: true`).
 */
import { scopeKey, type Scope } from '../scope.ts';

/**
 * Raw channel broadcast (seed 000, "Path 3: Socket Service"): delivered to the channel's current
 * members on every instance, not logged, not resumable — the at-most-once path, unlike topics.
 */
export interface ChannelMessage {
  readonly channel: string;
  readonly event: string;
  readonly data: unknown;
}

/** A listed member of a channel, as presence tells it. */
export interface ChannelMember {
  /** Opaque, unique per membership: what pairs a `presence.left` with its `presence.joined`. */
  readonly id: string;
  readonly subject: string;
  /** The socket it joined on (null only for a member without one: none joins without a socket today). */
  readonly connectionId: string | null;
  /** When it joined, in ms since the epoch. */
  readonly joinedAt: number;
}

/** Who joins: from the verified principal and the socket, never from client input. */
export interface MemberInput {
  readonly subject: string;
  readonly connectionId: string | undefined;
}

export const PRESENCE_JOINED = 'presence.joined';
export const PRESENCE_LEFT = 'presence.left';

/**
 * Events of this prefix are Tributary's own: a broadcast may not use one (it would forge a
 * member's coming or going), and only members that asked for presence receive them.
 */
export function isPresenceEvent(event: string): boolean {
  return event.startsWith('presence.');
}

/**
 * The topic under which a channel's traffic is counted in analytics (hot topics, topic stats):
 * `~channel:<name>`. No topic is named so (a topic name starts with a letter or a digit), so a
 * channel never shares a row with a topic — as the overflow row `~other` does not.
 */
export const CHANNEL_TOPIC_PREFIX = '~channel:';

export function channelKey(scope: Scope, channel: string): string {
  return `${scopeKey(scope)}|${channel}`;
}

/** The channel name of a channel key (a scope key holds no `|`: its parts are percent-encoded). */
function channelOfKey(key: string): string {
  return key.slice(key.indexOf('|') + 1);
}

/** The analytics topic key (a stream key's form) of a channel key. */
export function analyticsKeyOf(key: string): string {
  const bar = key.indexOf('|');
  return `${key.slice(0, bar)}|${CHANNEL_TOPIC_PREFIX}${key.slice(bar + 1)}`;
}

/** `presence.joined` / `presence.left` for `member`; `data` holds it with `joinedAt` in ISO 8601. */
export function presenceMessage(key: string, event: typeof PRESENCE_JOINED | typeof PRESENCE_LEFT, member: ChannelMember): ChannelMessage {
  return {
    channel: channelOfKey(key),
    event,
    data: { id: member.id, subject: member.subject, connectionId: member.connectionId, joinedAt: new Date(member.joinedAt).toISOString() },
  };
}

/** The member a presence message announces; undefined for a broadcast or a malformed one. */
export function memberOf(message: ChannelMessage): ChannelMember | undefined {
  if (!isPresenceEvent(message.event)) return undefined;
  return parseMember(message.data);
}

/** A member as `presenceMessage` writes it (`joinedAt` ISO 8601) or as stored (`joinedAt` in ms). */
export function parseMember(value: unknown): ChannelMember | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { id, subject, connectionId, joinedAt } = value as Record<string, unknown>;
  const at = typeof joinedAt === 'string' ? Date.parse(joinedAt) : joinedAt;
  if (typeof id !== 'string' || typeof subject !== 'string' || typeof at !== 'number' || !Number.isFinite(at)) return undefined;
  if (connectionId !== null && typeof connectionId !== 'string') return undefined;
  return { id, subject, connectionId, joinedAt: at };
}
