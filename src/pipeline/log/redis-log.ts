import type { Redis } from 'ioredis';
import { ErrorCode, InternalError, TributaryError } from '../../errors.ts';
import { isUnplacedEvent, type RealtimeEvent } from '../events/envelope.ts';
import { streamKeys } from '../redis-keys.ts';
import { parseStreamKey, streamOf } from '../stream.ts';
import type { Scope } from '../scope.ts';
import { defineScript } from '../redis-script.ts';
import { comparePositions, decodeCursor, encodeCursor, newEpoch, NOT_THIS_HISTORY, resyncRequired } from './cursor.ts';
import { mergeOldestFirst, type EventLog, type LogRetention } from './event-log.ts';

export interface RedisLogOptions {
  /** A command connection (not the one used for SUBSCRIBE). */
  readonly redis: Redis;
  readonly retention: LogRetention;
  /** Prefix of every key. @default 'trib:' */
  readonly keyPrefix?: string;
}

/** Retention by count and age (ARGV[2], ARGV[3]) and the stream's lifetime; shared by the append scripts. */
const TRIM = `
local doomed = {}
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', math.min(excess, 1000))) do
    doomed[#doomed + 1] = entry[1]
  end
end
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
if oldest > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '(' .. string.format('%d', oldest) .. '-0', 'COUNT', 1000)) do
    doomed[#doomed + 1] = entry[1]
  end
end
if #doomed > 0 then redis.call('XDEL', KEYS[1], unpack(doomed)) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
`;

/**
 * The stream's epoch as HEAD and the appends find it. KEYS: log, epoch, used (set by every append:
 * the epoch has had events). Sets `epoch`: false when there is none, or when its log is gone
 * although it had events — Redis lost the log alone (evicted, deleted): continuing the epoch would
 * hide the gap, so a new one replaces it. An epoch that never had an event (HEAD's, a quiet topic's)
 * continues. The epoch's value stays the plain epoch, as instances of earlier versions read it.
 */
const EPOCH = `
local epoch = redis.call('GET', KEYS[2])
if epoch and redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  epoch = false
end
`;

/**
 * EPOCH for the appends: the epoch the events go in (ARGV[1], the candidate, when there is none
 * that may continue); STORE_EPOCH stores it and marks it used once an event is in the log — a
 * script's writes before an error stay, so an append that fails (a log key of another type) must
 * leave the keys as it found them.
 */
const APPEND_EPOCH = `
${EPOCH}
local fresh = not epoch
epoch = epoch or ARGV[1]
`;

/** After APPEND_EPOCH and the first XADD (before TRIM, which sets the keys' expiry). */
const STORE_EPOCH = `
if fresh then redis.call('SET', KEYS[2], epoch) end
redis.call('SET', KEYS[3], '1')
`;

/**
 * Appends and publishes in one script: Redis runs scripts one at a time, so the order in which
 * events enter a stream's log is the order in which every process receives them live, whichever
 * instance appended them. The epoch is created on first use and expires with the stream, so a
 * stream that Redis forgot (restart without persistence, eviction, idle past retention) comes
 * back with a new epoch and old cursors get RESYNC_REQUIRED; so does a log Redis forgot while its
 * epoch survived (`EPOCH`).
 *
 * Retention deletes the oldest entries with XDEL rather than XTRIM: XDEL records the stream's
 * `max-deleted-entry-id` (XTRIM does not, in Redis 7.0), which is how a reader tells a cursor
 * whose successors are gone from one that lost nothing. Age uses Redis's own clock (stream ids
 * are Redis time), not the appender's.
 *
 * KEYS: log, epoch, used. ARGV: candidate epoch, max events, max age (ms), channel, event JSON.
 * The live frame is `E<epoch>\n<id>\n<event JSON>`.
 */
const APPEND = `
${APPEND_EPOCH}
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[5])
${STORE_EPOCH}
${TRIM}
redis.call('PUBLISH', ARGV[4], 'E' .. epoch .. '\\n' .. id .. '\\n' .. ARGV[5])
return {epoch, id}
`;

/**
 * APPEND for several events of one stream: each is added and published in order, then the stream
 * is trimmed once. KEYS: log, epoch, used. ARGV: candidate epoch, max events, max age (ms), channel,
 * event JSON… Returns {epoch, id…}.
 */
const APPEND_MANY = `
${APPEND_EPOCH}
local result = {epoch}
for i = 5, #ARGV do
  local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  redis.call('PUBLISH', ARGV[4], 'E' .. epoch .. '\\n' .. id .. '\\n' .. ARGV[i])
  result[#result + 1] = id
end
${STORE_EPOCH}
${TRIM}
return result
`;

/**
 * The head of a stream. Creates the epoch (with the stream's lifetime, not used yet) only when
 * there is none that may continue (`EPOCH`), and never extends an existing epoch alone: an epoch
 * must not outlive its log, or a log recreated after expiry would continue an old epoch and hide
 * the gap. A new epoch comes with its log, empty (an entry added and trimmed at once): so an
 * epoch of this version without its log has lost it, which `KEEP_ALIVE` relies on.
 *
 * With "may create" (ARGV[3]) '0' it creates nothing and returns 0 where it would have created
 * the epoch: the caller asks its budget of new streams (`HeadOptions.beforeCreate`) and runs it
 * again with '1'. Absent, it creates, as before the flag existed. The keys it writes are the same
 * either way, so instances of earlier versions (their own HEAD, without the flag) read them as ever.
 *
 * KEYS: log, epoch, used. ARGV: candidate epoch, max age (ms), may create ('0' or '1').
 * Returns {epoch, last id}, or 0 (not created).
 */
const HEAD = `
${EPOCH}
if not epoch and ARGV[3] == '0' then return 0 end
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[2])
  redis.call('DEL', KEYS[3])
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'h', '')
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {epoch, last}
`;

/**
 * Extends a stream's keys to `maxAgeMs` from now, as an append's TRIM does, when its epoch and its
 * log are both there (HEAD makes a new epoch's log with it). An epoch without its log — lost with
 * its `used` mark or without it (eviction), or made by an earlier version's HEAD — is not extended:
 * it expires within `maxAgeMs`, as before, and a log that was lost shows as a new history.
 * KEYS: log, epoch, used. ARGV: max age (ms).
 */
const KEEP_ALIVE = `
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return 1
`;

type KeepAliveCommand = (log: string, epochKey: string, usedKey: string, maxAgeMs: number) => Promise<number>;

/** Streams kept alive per burst of commands (sent together, answered in order). */
const KEEP_ALIVE_BATCH = 500;

type AppendManyCommand = (
  log: string,
  epochKey: string,
  usedKey: string,
  epoch: string,
  maxEvents: number,
  maxAgeMs: number,
  channel: string,
  ...json: string[]
) => Promise<string[]>;

/** HEAD's answer where "may create" was '0' and the stream has no epoch that may continue. */
const NOT_CREATED = 0;

type HeadCommand = (log: string, epochKey: string, usedKey: string, epoch: string, maxAgeMs: number, mayCreate: '0' | '1') => Promise<[string, string] | typeof NOT_CREATED>;

type AppendCommand = (
  log: string,
  epochKey: string,
  usedKey: string,
  epoch: string,
  maxEvents: number,
  maxAgeMs: number,
  channel: string,
  json: string,
) => Promise<[string, string]>;

/** How far the Redis server's clock (entry ids) may be from the instances' (event times), in ms. */
const CLOCK_SLACK_MS = 60_000;

/** Entries `eventsBetween` reads per round trip. */
const RANGE_PAGE = 1_000;

/** The log of the full mode: one Redis Stream per stream, trimmed by count and age. */
export function createRedisLog(options: RedisLogOptions): EventLog {
  const { redis, retention } = options;
  const prefix = options.keyPrefix ?? 'trib:';
  const append = defineScript<AppendCommand>(redis, 'tributaryAppend', 3, APPEND);
  const head = defineScript<HeadCommand>(redis, 'tributaryHead', 3, HEAD);
  const appendMany = defineScript<AppendManyCommand>(redis, 'tributaryAppendMany', 3, APPEND_MANY);
  const keepAlive = defineScript<KeepAliveCommand>(redis, 'tributaryKeepAlive', 3, KEEP_ALIVE);

  /** The keys of every stream `match` selects, each once (SCAN over their epoch keys). */
  async function* matchingStreams(match: (scope: Scope, topic: string) => boolean): AsyncGenerator<ReturnType<typeof streamKeys>> {
    // SCAN may return a key twice (the keyspace rehashing between calls).
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await unavailableOnFailure(redis.scan(cursor, 'MATCH', `${prefix}{*}:epoch`, 'COUNT', 1000));
      cursor = next;
      for (const epochKey of keys) {
        if (seen.has(epochKey)) continue;
        seen.add(epochKey);
        const stream = parseStreamKey(epochKey.slice(prefix.length + 1, -'}:epoch'.length));
        if (stream && match(stream.scope, stream.topic)) yield streamKeys(prefix, streamOf(stream.scope, stream.topic));
      }
    } while (cursor !== '0');
  }

  return {
    async append(stream, unplaced) {
      const keys = streamKeys(prefix, stream);
      const json = JSON.stringify(unplaced);
      const [epoch, id] = await unavailableOnFailure(
        append(keys.log, keys.epoch, keys.used, newEpoch(), retention.maxEvents, retention.maxAgeMs, keys.live, json),
      );
      return { ...unplaced, cursor: encodeCursor(epoch, id) };
    },

    async appendMany(stream, events) {
      if (events.length === 0) return [];
      const keys = streamKeys(prefix, stream);
      const [epoch, ...ids] = await unavailableOnFailure(
        appendMany(keys.log, keys.epoch, keys.used, newEpoch(), retention.maxEvents, retention.maxAgeMs, keys.live, ...events.map((event) => JSON.stringify(event))),
      );
      return events.map((unplaced, index) => ({ ...unplaced, cursor: encodeCursor(epoch!, ids[index]!) }));
    },

    async readAfter(stream, cursor, limit) {
      const { epoch, position } = decodeCursor(cursor);
      const keys = streamKeys(prefix, stream);
      const replies = await unavailableOnFailure(
        redis.multi().get(keys.epoch).xinfo('STREAM', keys.log).xrange(keys.log, `(${position}`, '+', 'COUNT', limit).exec(),
      );
      const [epochReply, infoReply, rangeReply] = replies ?? [];
      const currentEpoch = epochReply?.[1];
      if (typeof currentEpoch !== 'string' || currentEpoch !== epoch) throw resyncRequired(NOT_THIS_HISTORY);
      // An epoch without a log: the stream has had no event yet; only its start is a valid cursor.
      if (infoReply?.[0]) {
        if (comparePositions(position, '0-0') === 0) return [];
        // This history's cursor, but its log is gone (evicted, or deleted): what it held is lost.
        throw resyncRequired("the stream's log was lost");
      }
      const info = fieldsOf(infoReply?.[1]);
      if (comparePositions(position, stringField(info, 'last-generated-id')) > 0) throw resyncRequired('unknown cursor');
      if (comparePositions(position, stringField(info, 'max-deleted-entry-id')) < 0) {
        throw resyncRequired('events after it have expired');
      }
      if (rangeReply?.[0]) throw unavailable(rangeReply[0]);
      const entries = (rangeReply?.[1] ?? []) as [string, string[]][];
      return entries.map(([id, fields]) => toEvent(epoch, id, fields));
    },

    async head(stream, options) {
      const keys = streamKeys(prefix, stream);
      const run = (mayCreate: '0' | '1') => unavailableOnFailure(head(keys.log, keys.epoch, keys.used, newEpoch(), retention.maxAgeMs, mayCreate));
      // Without a question to ask, one round trip that creates; with one, an existing stream (the
      // common case) still costs one, and only a stream to create asks it, then creates.
      const beforeCreate = options?.beforeCreate;
      let reply = await run(beforeCreate ? '0' : '1');
      if (reply === NOT_CREATED && beforeCreate) {
        await beforeCreate();
        reply = await run('1');
      }
      if (reply === NOT_CREATED) throw new InternalError('LOG_HEAD_NOT_CREATED', 'the HEAD script created no stream although allowed to');
      const [epoch, last] = reply;
      return encodeCursor(epoch, last);
    },

    async eventsBetween(match, keep, since, until, limit) {
      let found: RealtimeEvent[] = [];
      // Entry ids are the Redis server's milliseconds: the range by id, then by the event's own time.
      const last = String(until + CLOCK_SLACK_MS);
      for await (const keys of matchingStreams(match)) {
        const epoch = await unavailableOnFailure(redis.get(keys.epoch));
        if (epoch === null) continue;
        // A page at a time, until the stream's first `limit` kept events (no later one of it can be
        // among the first `limit` of all): what `keep` leaves does not count, however much of it.
        const kept: RealtimeEvent[] = [];
        let first = String(Math.max(0, since - CLOCK_SLACK_MS));
        while (kept.length < limit) {
          const entries = (await unavailableOnFailure(redis.xrange(keys.log, first, last, 'COUNT', RANGE_PAGE))) as [string, string[]][];
          for (const [id, fields] of entries) {
            if (kept.length === limit) break;
            const event = toEvent(epoch, id, fields);
            if (event.metadata.timestamp >= since && event.metadata.timestamp < until && keep(event)) kept.push(event);
          }
          if (entries.length < RANGE_PAGE) break;
          first = `(${entries.at(-1)![0]}`;
        }
        if (kept.length > 0) found = mergeOldestFirst(found, kept, limit);
      }
      return found;
    },

    async keepAlive(streams) {
      for (let start = 0; start < streams.length; start += KEEP_ALIVE_BATCH) {
        const batch = streams.slice(start, start + KEEP_ALIVE_BATCH).map((stream) => {
          const keys = streamKeys(prefix, stream);
          return keepAlive(keys.log, keys.epoch, keys.used, retention.maxAgeMs);
        });
        await unavailableOnFailure(Promise.all(batch));
      }
    },

    retention,

    async renewEpochs(match) {
      let renewed = 0;
      for await (const keys of matchingStreams(match)) {
        await unavailableOnFailure(redis.del(keys.epoch, keys.log, keys.used));
        renewed += 1;
      }
      return renewed;
    },

    close: () => Promise.resolve(),
  };
}

/** A stream entry as its event; a corrupt entry (no event, or not one: `isUnplacedEvent`) is an internal fault. */
function toEvent(epoch: string, id: string, fields: string[]): RealtimeEvent {
  const at = fields.indexOf('e');
  const json = at === -1 ? undefined : fields[at + 1];
  if (json === undefined) throw new InternalError('LOG_ENTRY_CORRUPT', `stream entry ${id} has no event`);
  let unplaced: unknown;
  try {
    unplaced = JSON.parse(json);
  } catch (error) {
    throw new InternalError('LOG_ENTRY_CORRUPT', `stream entry ${id} is not JSON`, { cause: error });
  }
  if (!isUnplacedEvent(unplaced)) throw new InternalError('LOG_ENTRY_CORRUPT', `stream entry ${id} is not an event`);
  return { ...unplaced, cursor: encodeCursor(epoch, id) };
}

/** Redis unreachable or failing: the caller may retry; nothing was half-done (scripts are atomic). */
async function unavailableOnFailure<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw unavailable(error);
  }
}

function unavailable(cause: unknown): TributaryError {
  return new TributaryError(ErrorCode.UNAVAILABLE, 'The event log is unavailable right now; retry shortly', { cause });
}

function stringField(fields: Record<string, unknown>, name: string): string {
  const value = fields[name];
  return typeof value === 'string' ? value : '0-0';
}

/** XINFO's flat [name, value, …] reply as an object. */
function fieldsOf(reply: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (!Array.isArray(reply)) return fields;
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = reply[i + 1];
  return fields;
}
