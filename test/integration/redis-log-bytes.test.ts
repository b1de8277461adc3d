/**
 * The Redis log's byte bound per stream (`EVENT_LOG_STREAM_MAX_BYTES`): without it a topic kept
 * 10,000 events of 64 KB (640 MB) for an hour, and one tenant publishing to a few topics could fill
 * a Redis every tenant shares. Events dropped for bytes are answered as those dropped by count, the
 * byte total lives and dies with the stream, and a total that is lost (or left behind by appends of
 * the previous version, which do not keep it) is measured again, never trusted.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import type { EventLog, LogRetention } from '../../src/pipeline/log/event-log.ts';
import { streamOf, type StreamRef } from '../../src/pipeline/stream.ts';
import { startPrivateRedis, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const scope = { app: 'shop', env: 'prod', tenant: 'a' };
const hour: LogRetention = { maxEvents: 10_000, maxAgeMs: 3_600_000 };
const MAX_BYTES = 10_000;

/** An event whose JSON is `size` bytes (nine of the default fit in `MAX_BYTES`, ten do not). */
function sized(n: number, size = 1_100): UnplacedEvent {
  const bare = { id: `evt_${n}`, topic: 'orders', source: 'socket' as const, type: 'message', payload: { n, pad: '' }, metadata: { timestamp: Date.now(), scope } };
  return { ...bare, payload: { n, pad: 'x'.repeat(Math.max(0, size - JSON.stringify(bare).length)) } };
}

interface Opened {
  readonly redis: Redis;
  readonly log: EventLog;
  /** A Redis key of `stream`: `log`, `epoch`, `used`, `bytes`. */
  key(stream: StreamRef, part: string): string;
  /** The bytes of event JSON `stream`'s log holds, counted from its entries, and their event ids oldest first. */
  held(stream: StreamRef): Promise<{ bytes: number; ids: string[] }>;
  /** The byte total the log keeps for `stream` (`known + guess`), undefined without one. */
  total(stream: StreamRef): Promise<number | undefined>;
}

function openLog(retention: LogRetention = hour, maxStreamBytes = MAX_BYTES): Opened {
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => {
    await redis.quit();
  });
  const keyPrefix = uniquePrefix();
  const key = (stream: StreamRef, part: string) => `${keyPrefix}{${stream.key}}:${part}`;
  return {
    redis,
    log: createRedisLog({ redis, retention, keyPrefix, maxStreamBytes }),
    key,
    async held(stream) {
      const entries = await redis.xrange(key(stream, 'log'), '-', '+');
      const events = entries.map(([, fields]) => fields[1]!);
      return {
        bytes: events.reduce((sum, json) => sum + Buffer.byteLength(json), 0),
        ids: events.map((json) => (JSON.parse(json) as { id: string }).id),
      };
    },
    async total(stream) {
      const [known, guess] = await redis.hmget(key(stream, 'bytes'), 'known', 'guess');
      return known === null || guess === null ? undefined : Number(known) + Number(guess);
    },
  };
}

const orders = streamOf(scope, 'orders');

describe('the Redis log bounded in bytes per stream', () => {
  it('keeps a stream under its byte bound, dropping its oldest events and keeping the newest, with an exact total', async () => {
    const opened = openLog();
    for (let n = 1; n <= 30; n += 1) {
      await opened.log.append(orders, sized(n));
      const { bytes, ids } = await opened.held(orders);
      expect(bytes).toBeLessThanOrEqual(MAX_BYTES);
      expect(ids.at(-1)).toBe(`evt_${n}`);
      expect(await opened.total(orders)).toBe(bytes);
    }
    // Nine events of 1,100 bytes fit in 10,000.
    expect((await opened.held(orders)).ids).toEqual(Array.from({ length: 9 }, (_unused, index) => `evt_${index + 22}`));

    // A batch larger than the bound leaves its newest events, within it.
    await opened.log.appendMany(orders, Array.from({ length: 25 }, (_unused, index) => sized(100 + index)));
    const after = await opened.held(orders);
    expect(after.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(after.ids).toEqual(Array.from({ length: 9 }, (_unused, index) => `evt_${116 + index}`));
    expect(await opened.total(orders)).toBe(after.bytes);
  });

  it('answers a resume from a cursor whose successors were dropped for bytes as one dropped by count', async () => {
    const byBytes = openLog();
    const placed = [];
    for (let n = 1; n <= 30; n += 1) placed.push(await byBytes.log.append(orders, sized(n)));
    // Events 22…30 are kept: after event 21 nothing is missing, after event 20 event 21 is.
    expect(await byBytes.log.readAfter(orders, placed[20]!.cursor, 100)).toEqual(placed.slice(21));
    const refused = await byBytes.log.readAfter(orders, placed[19]!.cursor, 100).catch((error: unknown) => error);

    const byCount = openLog({ maxEvents: 10, maxAgeMs: 3_600_000 });
    const counted = [];
    for (let n = 1; n <= 30; n += 1) counted.push(await byCount.log.append(orders, sized(n, 100)));
    const refusedByCount = await byCount.log.readAfter(orders, counted[0]!.cursor, 100).catch((error: unknown) => error);

    expect(refused).toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(refused).toEqual(refusedByCount);
    expect((refused as { details?: unknown }).details).toEqual((refusedByCount as { details?: unknown }).details);
  });

  it('keeps an event larger than the bound alone, and drops it for the next one', async () => {
    const opened = openLog();
    await opened.log.appendMany(orders, [sized(1), sized(2)]);
    const large = await opened.log.append(orders, sized(3, 3 * MAX_BYTES));
    expect((await opened.held(orders)).ids).toEqual(['evt_3']);
    expect(await opened.total(orders)).toBe((await opened.held(orders)).bytes);
    expect((await opened.held(orders)).bytes).toBeGreaterThan(MAX_BYTES);
    expect(await opened.log.readAfter(orders, large.cursor, 10)).toEqual([]);

    const next = await opened.log.append(orders, sized(4));
    expect((await opened.held(orders)).ids).toEqual(['evt_4']);
    expect(await opened.total(orders)).toBe((await opened.held(orders)).bytes);
    expect(await opened.log.readAfter(orders, large.cursor, 10)).toEqual([next]);
  });

  // Real time: the other stream's keys expire in Redis (400 ms), while the kept one's are extended.
  it('expires the byte total with its stream, and keeps it while the stream is kept alive', async () => {
    const opened = openLog({ maxEvents: 100, maxAgeMs: 400 });
    const kept = streamOf(scope, 'kept');
    const other = streamOf(scope, 'other');
    await opened.log.append(kept, sized(1));
    await opened.log.append(other, sized(1));
    const ttl = await opened.redis.pttl(opened.key(other, 'bytes'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(400);
    const parts = ['log', 'epoch', 'used', 'bytes'];
    await waitFor(
      async () => {
        await opened.log.keepAlive([kept]);
        return (await opened.redis.exists(...parts.map((part) => opened.key(other, part)))) === 0;
      },
      { intervalMs: 50, message: "the other stream's keys, its byte total with them, expired" },
    );
    expect(await opened.redis.exists(...parts.map((part) => opened.key(kept, part)))).toBe(parts.length);
    // Its events are still counted: the next append trims by the total, not from nothing.
    await opened.log.append(kept, sized(2));
    expect(await opened.total(kept)).toBe((await opened.held(kept)).bytes);
  });

  it('keeps a stream whose byte total was lost within its bound, and counts exactly again once the events measured are gone', async () => {
    const opened = openLog();
    for (let n = 1; n <= 9; n += 1) await opened.log.append(orders, sized(n));
    await opened.redis.del(opened.key(orders, 'bytes'));

    // Measured again from the log itself (MEMORY USAGE: more than the JSON, never less).
    await opened.log.append(orders, sized(10));
    const measured = await opened.held(orders);
    expect(measured.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(measured.ids.at(-1)).toBe('evt_10');
    expect(await opened.total(orders)).toBeGreaterThanOrEqual(measured.bytes);

    for (let n = 11; n <= 30; n += 1) {
      await opened.log.append(orders, sized(n));
      const { bytes } = await opened.held(orders);
      expect(bytes).toBeLessThanOrEqual(MAX_BYTES);
      expect(await opened.total(orders)).toBeGreaterThanOrEqual(bytes);
    }
    // Every event the measure covered has been dropped since: the total is exact, the stream full again.
    const held = await opened.held(orders);
    expect(await opened.total(orders)).toBe(held.bytes);
    expect(held.ids).toHaveLength(9);
  });

  it("takes what an earlier version appended and trimmed (which keeps no byte total) into account at this version's next append", async () => {
    const opened = openLog();
    for (let n = 1; n <= 5; n += 1) await opened.log.append(orders, sized(n));
    // The previous version's APPEND: an XADD, and its trim by count (XDEL of the oldest), the byte
    // total untouched. Its events are larger than this version's bound alone allows.
    const log = opened.key(orders, 'log');
    for (let n = 6; n <= 25; n += 1) await opened.redis.xadd(log, '*', 'e', JSON.stringify(sized(n)));
    const [oldest] = await opened.redis.xrange(log, '-', '+', 'COUNT', 1);
    await opened.redis.xdel(log, oldest![0]);
    expect((await opened.held(orders)).bytes).toBeGreaterThan(2 * MAX_BYTES);

    await opened.log.append(orders, sized(26));
    const { bytes, ids } = await opened.held(orders);
    expect(bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(ids.at(-1)).toBe('evt_26');
    expect(await opened.total(orders)).toBeGreaterThanOrEqual(bytes);
  });
});

// What bounds all topics together is Redis's own `maxmemory` with `noeviction` (README): this is
// what a publish then answers — as it did before the byte bound.
describe('a Redis full up to its maxmemory (noeviction)', () => {
  it('refuses a publish with UNAVAILABLE (503) and places nothing', async () => {
    const redis = await startPrivateRedis();
    const keyPrefix = uniquePrefix();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: keyPrefix });
    const admin = new Redis(redis.url);
    onTestFinished(async () => {
      await admin.quit();
    });
    const publish = (n: number) => postGraphQL(server.graphqlUrl, { query: `mutation { publish(topic: "ticks", payload: { n: ${n} }) { id } }` });
    expect((await publish(1)).body.errors).toBeUndefined();
    const [log] = await admin.keys(`${keyPrefix}{*}:log`);
    expect(await admin.xlen(log!)).toBe(1);

    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    const refused = await publish(2);
    expect(refused.status).toBe(503);
    expect(refused.body.errors?.[0]?.extensions?.['code']).toBe('UNAVAILABLE');
    await admin.config('SET', 'maxmemory', '0');
    expect(await admin.xlen(log!)).toBe(1);
  });
});

describe('EVENT_LOG_STREAM_MAX_BYTES', () => {
  it('is 64 MiB by default and refuses values outside 1 MiB – 1 TiB, naming the variable', () => {
    expect(loadConfig({}).events.logStreamMaxBytes).toBe(64 * 1024 * 1024);
    expect(loadConfig({ EVENT_LOG_STREAM_MAX_BYTES: '2097152' }).events.logStreamMaxBytes).toBe(2 * 1024 * 1024);
    expect(() => loadConfig({ EVENT_LOG_STREAM_MAX_BYTES: '65536' })).toThrow('EVENT_LOG_STREAM_MAX_BYTES must be an integer from 1048576 to 1099511627776');
    expect(() => loadConfig({ EVENT_LOG_STREAM_MAX_BYTES: '64MB' })).toThrow('EVENT_LOG_STREAM_MAX_BYTES must be an integer');
  });
});
