/**
 * Presence across instances. Redis keys (`P` = the key prefix):
 * - `P{<channel key>}:presence` — hash of a channel's listed members: field the member's id,
 *   value `<instance> <member JSON>` (the instance that holds it now);
 * - `P presence:instances` — sorted set of the instances holding members, scored by their last
 *   heartbeat (ms since the epoch);
 * - `P presence:instance:<instance>` — set of that instance's entries (`<member id> <channel key>`),
 *   so that its members can be found without a SCAN once it is gone.
 *
 * Every `heartbeatMs` (the dashboard's tick: its reports are the instance's heartbeat too) an
 * instance that ever listed a member renews its score and sweeps instances silent for longer
 * than `expiryMs`: one sweeper per dead instance (a lock), which takes its members off their
 * channels and announces each as left. A list read skips the members of a silent instance not
 * swept yet, so a member of a dead instance is gone within the expiry, announced within a tick
 * more. An instance taken for dead while alive (its heartbeats did not reach Redis) finds its
 * score gone at its next heartbeat: it carries on under a new instance name and lists again the
 * members the sweep took, announcing them as joined again.
 *
 * Bounds: a channel's (`maxPerChannel`) is Redis's, checked as a member is listed; an instance's
 * (`maxPerInstance`) and a subject's on an instance (`maxPerSubject`) are this instance's, counted
 * over the members it holds listed (`local`): a member leaving it gives its places back.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { componentLogger, type Logger } from '../../logger.ts';
import { defineScript } from '../redis-script.ts';
import { parseMember, PRESENCE_JOINED, PRESENCE_LEFT, presenceMessage, type ChannelMember } from './channel-message.ts';
import {
  byJoinOrder,
  createSubjectPlaces,
  DEFAULT_MAX_PER_CHANNEL,
  DEFAULT_MAX_PER_INSTANCE,
  DEFAULT_MAX_PER_SUBJECT,
  type Announce,
  type PresenceBounds,
  type PresenceStore,
} from './presence.ts';

export interface RedisPresenceOptions extends PresenceBounds {
  readonly redis: Redis;
  /** @default 'trib:' */
  readonly keyPrefix?: string;
  /** How often this instance renews its heartbeat and sweeps dead instances, in ms. */
  readonly heartbeatMs: number;
  /** Silence after which an instance counts as dead and its members as gone, in ms. @default 3 × heartbeatMs */
  readonly expiryMs?: number;
  /** Sends a presence message to a channel's members on every instance (the transport's publish). */
  readonly announce: Announce;
  readonly logger: Logger;
  /** @default Date.now */
  readonly now?: () => number;
}

/** Lists a member unless the channel is full; re-owns one already listed. 1 added, 2 re-owned, 0 full. */
const ADD = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 2
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

/** Takes a member off if the dead instance ARGV[2] still holds it; answers its value, or false. */
const SWEEP = `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and string.sub(value, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. ' ' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return value
end
return false`;

/** Dead instances swept per heartbeat, and entries taken per round trip of a sweep. */
const SWEEP_INSTANCES = 16;
const SWEEP_BATCH = 256;

export function createRedisPresence(options: RedisPresenceOptions): PresenceStore {
  const { redis, announce } = options;
  const prefix = options.keyPrefix ?? 'trib:';
  const expiryMs = options.expiryMs ?? options.heartbeatMs * 3;
  const maxPerChannel = options.maxPerChannel ?? DEFAULT_MAX_PER_CHANNEL;
  const maxPerInstance = options.maxPerInstance ?? DEFAULT_MAX_PER_INSTANCE;
  const places = createSubjectPlaces(options.maxPerSubject ?? DEFAULT_MAX_PER_SUBJECT);
  const now = options.now ?? Date.now;
  const logger = componentLogger(options.logger, 'presence');
  const add = defineScript<(hash: string, id: string, value: string, max: number) => Promise<number>>(redis, 'tributaryPresenceAdd', 1, ADD);
  const sweepOne = defineScript<(hash: string, id: string, instance: string) => Promise<string | null>>(redis, 'tributaryPresenceSweep', 1, SWEEP);
  const instancesKey = `${prefix}presence:instances`;
  const hashOf = (key: string) => `${prefix}{${key}}:presence`;
  const entriesOf = (instance: string) => `${prefix}presence:instance:${instance}`;
  const entryOf = (key: string, member: ChannelMember) => `${member.id} ${key}`;
  const newInstance = () => randomUUID().replaceAll('-', '').slice(0, 16);

  /** Member ids stay with a member for life; the instance name changes if this one was taken for dead. */
  const idPrefix = newInstance().slice(0, 10);
  let instance = newInstance();
  let sequence = 0;
  /** This instance's listed members, by id; each holds a place of its subject's (`places`) until `unlist`. */
  const local = new Map<string, { readonly key: string; readonly member: ChannelMember }>();
  const unlist = (id: string) => {
    const entry = local.get(id);
    if (!entry) return;
    local.delete(id);
    places.give(entry.key, entry.member.subject);
  };
  /** Members whose leaving did not reach Redis, taken off at the next heartbeat (or at close). */
  const leaving = new Map<string, { readonly key: string; readonly member: ChannelMember }>();
  let started: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;
  let failing = false;
  let closed = false;

  const tell = (key: string, event: typeof PRESENCE_JOINED | typeof PRESENCE_LEFT, member: ChannelMember) =>
    announce(key, presenceMessage(key, event, member)).catch((error: unknown) => logger.warn({ err: error, event }, 'presence message not sent'));

  const start = (): Promise<void> =>
    (started ??= redis.zadd(instancesKey, now(), instance).then(
      () => {
        timer = setInterval(() => void heartbeat(), options.heartbeatMs);
        timer.unref();
      },
      (error: unknown) => {
        started = undefined;
        throw error;
      },
    ));

  const heartbeat = () => {
    // A slow beat (Redis away) is not overlapped: that tick is skipped.
    beating ??= beat()
      .then(() => {
        if (failing) logger.info('presence heartbeats resumed');
        failing = false;
      })
      .catch((error: unknown) => {
        if (!failing) logger.warn({ err: error }, 'presence heartbeat failed; retrying every tick');
        failing = true;
      })
      .finally(() => (beating = undefined));
    return beating;
  };

  const beat = async () => {
    if (closed) return;
    // 1: the score was gone — another instance swept this one, taken for dead.
    if ((await redis.zadd(instancesKey, now(), instance)) === 1) await relist();
    for (const { key, member } of [...leaving.values()]) await takeOff(key, member);
    await sweep();
  };

  /**
   * Lists `member` as this instance's (re-owning it if it is listed already): 1 listed, 2 re-owned,
   * 0 the channel is full. The instance's entry first: a member listed without it could not be swept.
   */
  const own = async (key: string, member: ChannelMember): Promise<number> => {
    const owner = instance;
    await redis.sadd(entriesOf(owner), entryOf(key, member));
    const listed = await add(hashOf(key), member.id, `${owner} ${JSON.stringify(member)}`, maxPerChannel);
    if (listed === 0) await redis.srem(entriesOf(owner), entryOf(key, member));
    // Renamed meanwhile (`relist`), which did not see this member yet: owned again under the new name.
    return listed !== 0 && owner !== instance ? own(key, member) : listed;
  };

  /** Carries on under a new name: the members still listed are re-owned, those swept are listed again. */
  const relist = async () => {
    const previous = instance;
    instance = newInstance();
    logger.warn({ previous, instance }, 'presence: this instance was taken for dead; listing its members again');
    // The heartbeat's ZADD put the old name back: it goes, the new one comes.
    await redis.multi().zrem(instancesKey, previous).zadd(instancesKey, now(), instance).exec();
    for (const [id, { key, member }] of [...local]) {
      if (!local.has(id)) continue;
      const listed = await own(key, member);
      if (listed === 0) unlist(id);
      if (listed === 1) await tell(key, PRESENCE_JOINED, member);
    }
    await redis.del(entriesOf(previous));
  };

  const sweep = async () => {
    const silent = await redis.zrangebyscore(instancesKey, '-inf', `(${now() - expiryMs}`, 'LIMIT', 0, SWEEP_INSTANCES);
    for (const dead of silent) {
      if (dead === instance) continue;
      const lock = `${prefix}presence:sweeping:${dead}`;
      if ((await redis.set(lock, instance, 'PX', expiryMs, 'NX')) !== 'OK') continue;
      for (;;) {
        const entries = await redis.spop(entriesOf(dead), SWEEP_BATCH);
        if (entries.length === 0) break;
        await Promise.all(
          entries.map(async (entry) => {
            const space = entry.indexOf(' ');
            const key = entry.slice(space + 1);
            const value = await sweepOne(hashOf(key), entry.slice(0, space), dead);
            const member = value === null ? undefined : parseValue(value)?.member;
            if (member) await tell(key, PRESENCE_LEFT, member);
          }),
        );
      }
      await redis.multi().zrem(instancesKey, dead).del(lock).exec();
      logger.info({ instance: dead }, 'presence: members of a silent instance swept');
    }
  };

  const takeOff = async (key: string, member: ChannelMember) => {
    unlist(member.id);
    leaving.delete(member.id);
    let results: [Error | null, unknown][] | null;
    try {
      results = await redis.multi().hdel(hashOf(key), member.id).srem(entriesOf(instance), entryOf(key, member)).exec();
    } catch (error) {
      leaving.set(member.id, { key, member });
      throw error;
    }
    // 0: gone already (swept while this instance was taken for dead, and announced then).
    if (results?.[0]?.[1] === 1) await tell(key, PRESENCE_LEFT, member);
  };

  return {
    async add(key, input) {
      // The subject's place is taken before the first await, so that its joins at once do not all pass.
      if (closed || local.size >= maxPerInstance || !places.take(key, input.subject)) return undefined;
      let member: ChannelMember | undefined;
      try {
        await start();
        sequence += 1;
        const joining: ChannelMember = { id: `${idPrefix}.${sequence.toString(36)}`, subject: input.subject, connectionId: input.connectionId ?? null, joinedAt: now() };
        if ((await own(key, joining)) !== 0) member = joining;
      } finally {
        if (!member) places.give(key, input.subject);
      }
      if (!member) return undefined;
      local.set(member.id, { key, member });
      await tell(key, PRESENCE_JOINED, member);
      return member;
    },
    remove: takeOff,
    async list(key, first) {
      const stored = await redis.hgetall(hashOf(key));
      const entries = Object.values(stored).flatMap((value) => parseValue(value) ?? []);
      const instances = [...new Set(entries.map((entry) => entry.instance))];
      if (instances.length === 0) return { count: 0, members: [] };
      const scores = await redis.zmscore(instancesKey, ...instances);
      const oldest = now() - expiryMs;
      const alive = new Set(instances.filter((_, at) => scores[at] != null && Number(scores[at]) >= oldest));
      const members = entries.filter((entry) => alive.has(entry.instance)).map((entry) => entry.member);
      members.sort(byJoinOrder);
      return { count: members.length, members: members.slice(0, Math.max(0, first)) };
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await beating;
      if (started === undefined) return;
      // Members whose leaving did not get through (Redis away then): taken off now, else at the sweep.
      for (const { key, member } of [...local.values(), ...leaving.values()]) await takeOff(key, member).catch(() => undefined);
      await redis.multi().zrem(instancesKey, instance).del(entriesOf(instance)).exec();
    },
  };
}

/** `<instance> <member JSON>` → both; undefined for a value that is not one. */
function parseValue(value: string): { readonly instance: string; readonly member: ChannelMember } | undefined {
  const space = value.indexOf(' ');
  if (space <= 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.slice(space + 1));
  } catch {
    return undefined;
  }
  const member = parseMember(parsed);
  return member && { instance: value.slice(0, space), member };
}
