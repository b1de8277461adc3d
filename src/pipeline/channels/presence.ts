/**
 * Presence (the seed's Redis row: "presence"): who is in a channel now. A store lists a channel's
 * members and announces their coming and going on the channel itself (`presence.joined`,
 * `presence.left`); in this process's memory without Redis, across instances with it
 * (`redis-presence.ts`). Bounded: a channel lists at most `maxPerChannel` members, an instance at
 * most `maxPerInstance` (all tenants together), and an instance at most `maxPerSubject` members of
 * one user — a subject within its scope — across its channels, so that one user cannot take every
 * place the instance lists from the others. A member past any bound is a member all the same — it
 * receives the channel's broadcasts — but is neither listed nor announced.
 */
import { PRESENCE_JOINED, PRESENCE_LEFT, presenceMessage, type ChannelMember, type ChannelMessage, type MemberInput } from './channel-message.ts';

/** A channel's listed members now: `count` of them all, the first `first` in the order they joined. */
export interface PresenceList {
  readonly count: number;
  readonly members: readonly ChannelMember[];
}

export interface PresenceStore {
  /**
   * Lists a member of channel `key` and announces it (`presence.joined`); undefined when a bound
   * is reached (not listed). @throws when the store cannot be written (Redis away).
   */
  add(key: string, input: MemberInput): Promise<ChannelMember | undefined>;
  /** Takes a member off the list and announces it (`presence.left`), unless it is gone already. */
  remove(key: string, member: ChannelMember): Promise<void>;
  list(key: string, first: number): Promise<PresenceList>;
  /** Takes this instance's members still listed off the list; idempotent. */
  close(): Promise<void>;
}

export interface PresenceBounds {
  /** Members one channel lists at most. @default 1000 */
  readonly maxPerChannel?: number;
  /** Members one instance lists at most, across its channels. @default 10000 */
  readonly maxPerInstance?: number;
  /** Members of one subject (in one scope) one instance lists at most, across its channels. @default 100 */
  readonly maxPerSubject?: number;
}

export const DEFAULT_MAX_PER_CHANNEL = 1_000;
export const DEFAULT_MAX_PER_INSTANCE = 10_000;
export const DEFAULT_MAX_PER_SUBJECT = 100;

/** The places each subject holds in an instance's list: one per member listed, taken and given back with it. */
export interface SubjectPlaces {
  /** Takes a place for `subject` in the scope of channel `key`; false when it holds `maxPerSubject` already. */
  take(key: string, subject: string): boolean;
  give(key: string, subject: string): void;
  clear(): void;
}

export function createSubjectPlaces(maxPerSubject: number): SubjectPlaces {
  const held = new Map<string, number>();
  // A user is its subject within its scope: the channel key's scope key (which holds no `|`), then the subject.
  const userOf = (key: string, subject: string) => `${key.slice(0, key.indexOf('|') + 1)}${subject}`;
  return {
    take(key, subject) {
      const user = userOf(key, subject);
      const count = held.get(user) ?? 0;
      if (count >= maxPerSubject) return false;
      held.set(user, count + 1);
      return true;
    },
    give(key, subject) {
      const user = userOf(key, subject);
      const count = held.get(user) ?? 0;
      if (count <= 1) held.delete(user);
      else held.set(user, count - 1);
    },
    clear: () => held.clear(),
  };
}

/** Sends a presence message to the members of channel `key` (the channel transport's publish). */
export type Announce = (key: string, message: ChannelMessage) => Promise<void>;

export interface MemoryPresenceOptions extends PresenceBounds {
  readonly announce: Announce;
  /** @default Date.now */
  readonly now?: () => number;
}

/** Presence within one process (the embedded default): members are this process's only. */
export function createMemoryPresence(options: MemoryPresenceOptions): PresenceStore {
  const maxPerChannel = options.maxPerChannel ?? DEFAULT_MAX_PER_CHANNEL;
  const maxPerInstance = options.maxPerInstance ?? DEFAULT_MAX_PER_INSTANCE;
  const places = createSubjectPlaces(options.maxPerSubject ?? DEFAULT_MAX_PER_SUBJECT);
  const now = options.now ?? Date.now;
  /** Members by channel key, each map in the order they joined. */
  const channels = new Map<string, Map<string, ChannelMember>>();
  let listed = 0;
  let sequence = 0;
  return {
    async add(key, input) {
      let members = channels.get(key);
      if (listed >= maxPerInstance || (members?.size ?? 0) >= maxPerChannel || !places.take(key, input.subject)) return undefined;
      if (!members) channels.set(key, (members = new Map<string, ChannelMember>()));
      sequence += 1;
      const member: ChannelMember = { id: `m${sequence.toString(36)}`, subject: input.subject, connectionId: input.connectionId ?? null, joinedAt: now() };
      members.set(member.id, member);
      listed += 1;
      await options.announce(key, presenceMessage(key, PRESENCE_JOINED, member));
      return member;
    },
    async remove(key, member) {
      const members = channels.get(key);
      if (!members?.delete(member.id)) return;
      listed -= 1;
      places.give(key, member.subject);
      if (members.size === 0) channels.delete(key);
      await options.announce(key, presenceMessage(key, PRESENCE_LEFT, member));
    },
    list(key, first) {
      const members = channels.get(key);
      return Promise.resolve({ count: members?.size ?? 0, members: members ? [...members.values()].slice(0, Math.max(0, first)) : [] });
    },
    close() {
      channels.clear();
      listed = 0;
      places.clear();
      return Promise.resolve();
    },
  };
}

/** Members in the order they joined (ties by id), for a list read from several instances. */
export function byJoinOrder(a: ChannelMember, b: ChannelMember): number {
  return a.joinedAt - b.joinedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
