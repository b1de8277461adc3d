/**
 * The Redis log's byte trim, bounded per append and exact after a re-measure
 * (`EVENT_LOG_STREAM_MAX_BYTES`, TRIM in `redis-log-scripts.ts`):
 * - a stream far over its bound (filled by an earlier version, or the bound lowered) was trimmed
 *   whole by the next append — thousands of entries read and deleted in one script, holding Redis.
 *   Bytes now share the entries an append count and age drop — 1,000 more than it added: the
 *   stream comes under its bound over a few appends, its newest event always kept, lost cursors
 *   told as before; a batch of more than 1,000 events leaves it no further over than it was.
 * - a byte total measured again (MEMORY USAGE, more than the JSON) kept its surplus once the
 *   measured entries were gone within an append, and went on dropping exactly counted newer events.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { RealtimeEvent, UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog, LogRetention } from '../../src/pipeline/log/event-log.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

const scope = { app: 'shop', env: 'prod', tenant: 'a' };
const hour: LogRetention = { maxEvents: 10_000, maxAgeMs: 3_600_000 };
const MAX_BYTES = 10_000;
/** The entries one append drops at most beyond those it added, whichever bound drops them. */
const PER_APPEND = 1_000;
const orders = streamOf(scope, 'orders');

/** An event whose JSON is `size` bytes. */
function sized(n: number, size: number): UnplacedEvent {
  const bare = { id: `evt_${n}`, topic: 'orders', source: 'socket' as const, type: 'message', payload: { n, pad: '' }, metadata: { timestamp: Date.now(), scope } };
  return { ...bare, payload: { n, pad: 'x'.repeat(Math.max(0, size - JSON.stringify(bare).length)) } };
}

function opened() {
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => {
    await redis.quit();
  });
  const keyPrefix = uniquePrefix();
  const key = (part: string) => `${keyPrefix}{${orders.key}}:${part}`;
  return {
    redis,
    key,
    /** A log on these keys bounded to `maxStreamBytes`. */
    log: (maxStreamBytes: number): EventLog => createRedisLog({ redis, retention: hour, keyPrefix, maxStreamBytes }),
    async held() {
      const entries = await redis.xrange(key('log'), '-', '+');
      const events = entries.map(([, fields]) => fields[1]!);
      return { bytes: events.reduce((sum, json) => sum + Buffer.byteLength(json), 0), ids: events.map((json) => (JSON.parse(json) as { id: string }).id) };
    },
    async total() {
      const [known, guess] = await redis.hmget(key('bytes'), 'known', 'guess');
      return known === null || guess === null ? undefined : Number(known) + Number(guess);
    },
  };
}

const expired = (log: EventLog, after: RealtimeEvent) => log.readAfter(orders, after.cursor, 10).catch((error: unknown) => error);

describe('a stream far over its byte bound', () => {
  it('is brought under it over several appends, each dropping at most 1,000 of its oldest events more than it added, the newest kept', { timeout: 60_000 }, async () => {
    const log = opened();
    // 3,500 events of 200 bytes (700 KB), kept by a bound of 10 MB; then the bound is lowered.
    const filling = log.log(10_000_000);
    const placed: RealtimeEvent[] = [];
    for (let start = 1; start <= 3_500; start += 500) {
      placed.push(...(await filling.appendMany(orders, Array.from({ length: 500 }, (_unused, index) => sized(start + index, 200)))));
    }
    const lowered = log.log(MAX_BYTES);

    let length = await log.redis.xlen(log.key('log'));
    expect(length).toBe(3_500);
    const lengths: number[] = [];
    for (let n = 3_501; (await log.held()).bytes > MAX_BYTES; n += 1) {
      expect(n).toBeLessThan(3_510);
      await lowered.append(orders, sized(n, 200));
      const after = await log.redis.xlen(log.key('log'));
      expect(length + 1 - after).toBeLessThanOrEqual(PER_APPEND + 1);
      lengths.push((length = after));
      const { ids, bytes } = await log.held();
      expect(ids.at(-1)).toBe(`evt_${n}`);
      expect(await log.total()).toBe(bytes);
      // The oldest kept follows the last dropped: a cursor there lost nothing, one before it did.
      const oldest = Number(ids[0]!.slice('evt_'.length));
      expect((await lowered.readAfter(orders, placed[oldest - 2]!.cursor, 1))[0]?.id).toBe(ids[0]);
      expect(await expired(lowered, placed[oldest - 3]!)).toMatchObject({ code: 'RESYNC_REQUIRED', details: { reason: 'events after it have expired' } });
    }
    // 1,001 a time (1,000 more than the append added), then the rest: 50 events of 200 bytes fit in 10,000.
    expect(lengths).toEqual([2_500, 1_500, 500, 50]);
    expect((await log.held()).ids).toEqual(Array.from({ length: 50 }, (_unused, index) => `evt_${3_455 + index}`));
  });

  it("filled by an earlier version's appends (no byte total: measured again) is brought under it the same way", { timeout: 60_000 }, async () => {
    const log = opened();
    // The previous version's APPEND: XADDs, no byte total. 3,000 events of 1,100 bytes (3.3 MB).
    const pipeline = log.redis.pipeline();
    for (let n = 1; n <= 3_000; n += 1) pipeline.xadd(log.key('log'), '*', 'e', JSON.stringify(sized(n, 1_100)));
    await pipeline.exec();
    const lowered = log.log(MAX_BYTES);

    let length = 3_000;
    let appends = 0;
    for (let n = 3_001; (await log.held()).bytes > MAX_BYTES; n += 1) {
      expect((appends += 1)).toBeLessThan(10);
      await lowered.append(orders, sized(n, 1_100));
      const after = await log.redis.xlen(log.key('log'));
      expect(length + 1 - after).toBeLessThanOrEqual(PER_APPEND + 1);
      length = after;
      const { ids, bytes } = await log.held();
      expect(ids.at(-1)).toBe(`evt_${n}`);
      expect(await log.total()).toBeGreaterThanOrEqual(bytes);
    }
    // 3.3 MB, at most 1,000 events of 1,100 bytes an append.
    expect(appends).toBeGreaterThanOrEqual(3);
  });
});

describe('a batch of more than 1,000 events', () => {
  it('leaves the stream within its byte bound, as a smaller batch does', { timeout: 60_000 }, async () => {
    const log = opened();
    const bounded = log.log(MAX_BYTES);
    for (const [first, count] of [[1, 1_500], [1_501, 2_000]] as const) {
      await bounded.appendMany(orders, Array.from({ length: count }, (_unused, index) => sized(first + index, 200)));
      const { ids, bytes } = await log.held();
      expect(bytes).toBeLessThanOrEqual(MAX_BYTES);
      expect(ids.at(-1)).toBe(`evt_${first + count - 1}`);
      expect(await log.total()).toBe(bytes);
    }
  });
});

describe('a byte total measured again', () => {
  it.each([
    ['deleted', (redis: Redis, key: string) => redis.del(key)],
    ['corrupted', (redis: Redis, key: string) => redis.hset(key, 'known', 'x')],
  ] as const)(
    '(%s) keeps the events counted exactly once the measured ones are gone, when they fit in the bound',
    async (_how, spoil) => {
      const log = opened();
      const bounded = log.log(MAX_BYTES);
      for (let n = 1; n <= 3; n += 1) await bounded.append(orders, sized(n, 1_100));
      await spoil(log.redis, log.key('bytes'));

      // Measured again (events 1-3: MEMORY USAGE, more than their JSON), event 4 counted exactly.
      await bounded.append(orders, sized(4, 1_100));
      const measured = await log.held();
      expect(measured.ids).toEqual(['evt_1', 'evt_2', 'evt_3', 'evt_4']);
      expect(await log.total()).toBeGreaterThan(measured.bytes);

      // Event 5 brings the exact part (events 4 and 5) to the bound: the measured events go, with
      // what the measure counted beyond their JSON; events 4 and 5 fit and stay.
      await bounded.append(orders, sized(5, MAX_BYTES - 1_100));
      const { ids, bytes } = await log.held();
      expect(ids).toEqual(['evt_4', 'evt_5']);
      expect(bytes).toBe(MAX_BYTES);
      expect(await log.total()).toBe(bytes);
    },
  );
});
