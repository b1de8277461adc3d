import type { Redis } from 'ioredis';
import { ErrorCode, InternalError, TributaryError } from '../../errors.ts';
import { isUnplacedEvent, type RealtimeEvent } from '../events/envelope.ts';
import { streamKeys } from '../redis-keys.ts';
import { parseStreamKey, streamOf } from '../stream.ts';
import type { Scope } from '../scope.ts';
import { defineScript } from '../redis-script.ts';
import { APPEND, APPEND_MANY, HEAD, KEEP_ALIVE, NOT_CREATED, type AppendCommand, type AppendManyCommand, type HeadCommand, type KeepAliveCommand } from './redis-log-scripts.ts';
import { comparePositions, decodeCursor, encodeCursor, newEpoch, NOT_THIS_HISTORY, resyncRequired } from './cursor.ts';
import { mergeOldestFirst, type EventLog, type LogRetention } from './event-log.ts';

export interface RedisLogOptions {
  /** A command connection (not the one used for SUBSCRIBE). */
  readonly redis: Redis;
  readonly retention: LogRetention;
  /** Prefix of every key. @default 'trib:' */
  readonly keyPrefix?: string;
  /**
   * Bytes of event JSON one stream's log keeps (`EVENT_LOG_STREAM_MAX_BYTES`): beyond it its
   * oldest events are dropped, as by count, except its newest, however large. @default 64 MiB
   */
  readonly maxStreamBytes?: number;
}

/** `RedisLogOptions.maxStreamBytes`' default. */
export const DEFAULT_STREAM_MAX_BYTES = 64 * 1024 * 1024;

/** Streams kept alive per burst of commands (sent together, answered in order). */
const KEEP_ALIVE_BATCH = 500;

/** How far the Redis server's clock (entry ids) may be from the instances' (event times), in ms. */
const CLOCK_SLACK_MS = 60_000;

/** Entries `eventsBetween` reads per round trip. */
const RANGE_PAGE = 1_000;

/** The log of the full mode: one Redis Stream per stream, trimmed by count, age and bytes. */
export function createRedisLog(options: RedisLogOptions): EventLog {
  const { redis, retention } = options;
  const prefix = options.keyPrefix ?? 'trib:';
  const maxBytes = options.maxStreamBytes ?? DEFAULT_STREAM_MAX_BYTES;
  const append = defineScript<AppendCommand>(redis, 'tributaryAppend', 4, APPEND);
  const head = defineScript<HeadCommand>(redis, 'tributaryHead', 4, HEAD);
  const appendMany = defineScript<AppendManyCommand>(redis, 'tributaryAppendMany', 4, APPEND_MANY);
  const keepAlive = defineScript<KeepAliveCommand>(redis, 'tributaryKeepAlive', 4, KEEP_ALIVE);

  /** The keys of every stream `match` selects, each once (SCAN over their epoch keys). */
  async function* matchingStreams(match: (scope: Scope, topic: string) => boolean): AsyncGenerator<LogKeys> {
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
        append(keys.log, keys.epoch, keys.used, keys.bytes, newEpoch(), retention.maxEvents, retention.maxAgeMs, keys.live, maxBytes, json),
      );
      return { ...unplaced, cursor: encodeCursor(epoch, id) };
    },

    async appendMany(stream, events) {
      if (events.length === 0) return [];
      const keys = streamKeys(prefix, stream);
      const [epoch, ...ids] = await unavailableOnFailure(
        appendMany(
          keys.log,
          keys.epoch,
          keys.used,
          keys.bytes,
          newEpoch(),
          retention.maxEvents,
          retention.maxAgeMs,
          keys.live,
          maxBytes,
          ...events.map((event) => JSON.stringify(event)),
        ),
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
      const run = (mayCreate: '0' | '1') => unavailableOnFailure(head(keys.log, keys.epoch, keys.used, keys.bytes, newEpoch(), retention.maxAgeMs, mayCreate));
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
          return keepAlive(keys.log, keys.epoch, keys.used, keys.bytes, retention.maxAgeMs);
        });
        await unavailableOnFailure(Promise.all(batch));
      }
    },

    retention,

    async renewEpochs(match) {
      let renewed = 0;
      for await (const keys of matchingStreams(match)) {
        await unavailableOnFailure(redis.del(keys.epoch, keys.log, keys.used, keys.bytes));
        renewed += 1;
      }
      return renewed;
    },

    close: () => Promise.resolve(),
  };
}

type LogKeys = ReturnType<typeof streamKeys>;

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
