/**
 * The contract both logs keep: positions in order, resume after a cursor, and RESYNC_REQUIRED
 * (never a silent gap) for a cursor that cannot be resumed.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { decodeCursor, encodeCursor, newEpoch } from '../../src/pipeline/log/cursor.ts';
import type { EventLog, LogRetention } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import type { RealtimeEvent, UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { streamOf, type StreamRef } from '../../src/pipeline/stream.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const scope = { app: 'shop', env: 'prod', tenant: 'a' };

function unplaced(n: number, timestamp = Date.now()): UnplacedEvent {
  return { id: `evt_${n}`, topic: 'orders', source: 'socket', type: 'message', payload: { n }, metadata: { timestamp, scope } };
}

interface Harness {
  readonly log: EventLog;
  readonly published: RealtimeEvent[];
}

const logs: Record<string, (retention: LogRetention) => Harness> = {
  memory: (retention) => {
    const published: RealtimeEvent[] = [];
    const log = createMemoryLog({ retention, publish: (_stream, event) => published.push(event) });
    onTestFinished(() => log.close());
    return { log, published };
  },
  redis: (retention) => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => {
      await redis.quit();
    });
    return { log: createRedisLog({ redis, retention, keyPrefix: uniquePrefix() }), published: [] };
  },
};

const generous: LogRetention = { maxEvents: 10_000, maxAgeMs: 3_600_000 };

async function appendAll(log: EventLog, stream: StreamRef, count: number): Promise<RealtimeEvent[]> {
  const placed: RealtimeEvent[] = [];
  for (let n = 1; n <= count; n += 1) placed.push(await log.append(stream, unplaced(n)));
  return placed;
}

describe.each(Object.keys(logs))('%s event log', (kind) => {
  const open = logs[kind]!;

  it('places events in order and reads exactly those after a cursor', async () => {
    const { log } = open(generous);
    const stream = streamOf(scope, 'orders');
    const placed = await appendAll(log, stream, 5);
    expect(new Set(placed.map((event) => event.cursor)).size).toBe(5);
    expect(await log.readAfter(stream, placed[1]!.cursor, 100)).toEqual(placed.slice(2));
    expect(await log.readAfter(stream, placed[4]!.cursor, 100)).toEqual([]);
    expect(await log.readAfter(stream, placed[0]!.cursor, 2)).toEqual(placed.slice(1, 3));
  });

  it('appends a batch in order, after what was there, and trims it like single appends', async () => {
    const { log } = open({ maxEvents: 10, maxAgeMs: 3_600_000 });
    const stream = streamOf(scope, 'orders');
    const first = await appendAll(log, stream, 2);
    const batch = await log.appendMany(stream, Array.from({ length: 12 }, (_unused, index) => unplaced(index + 3)));
    expect(batch.map((event) => (event.payload as { n: number }).n)).toEqual(Array.from({ length: 12 }, (_unused, index) => index + 3));
    expect(new Set(batch.map((event) => event.cursor)).size).toBe(12);
    // 14 appended, 10 kept: the batch's last ten, readable after the event before them.
    expect(await log.readAfter(stream, batch[1]!.cursor, 100)).toEqual(batch.slice(2));
    await expect(log.readAfter(stream, first[0]!.cursor, 100)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(await log.appendMany(stream, [])).toEqual([]);
  });

  it('gives a head cursor that reads only later events, for an empty stream too', async () => {
    const { log } = open(generous);
    const stream = streamOf(scope, 'empty');
    const start = await log.head(stream);
    expect(await log.readAfter(stream, start, 10)).toEqual([]);
    const placed = await appendAll(log, stream, 2);
    expect(await log.readAfter(stream, start, 10)).toEqual(placed);
    const head = await log.head(stream);
    expect(head).toBe(placed[1]!.cursor);
  });

  it('keeps one epoch per stream and a different one for every other stream', async () => {
    const { log } = open(generous);
    const [a1, a2] = await appendAll(log, streamOf(scope, 'a'), 2);
    const [b1] = await appendAll(log, streamOf(scope, 'b'), 1);
    const [c1] = await appendAll(log, streamOf({ ...scope, tenant: 'b' }, 'a'), 1);
    expect(decodeCursor(a1!.cursor).epoch).toBe(decodeCursor(a2!.cursor).epoch);
    expect(decodeCursor(b1!.cursor).epoch).not.toBe(decodeCursor(a1!.cursor).epoch);
    expect(decodeCursor(c1!.cursor).epoch).not.toBe(decodeCursor(a1!.cursor).epoch);
  });

  it.each([
    ['garbage', () => 'not-a-cursor'],
    ['a cursor of another stream', (other: string) => other],
    ['a made-up epoch', (_other: string, own: string) => encodeCursor('00000000deadbeef', decodeCursor(own).position)],
    ['a position part beyond 64 bits', (_other: string, own: string) => encodeCursor(decodeCursor(own).epoch, '1-18446744073709551616')],
  ])('refuses %s with RESYNC_REQUIRED', async (_name, make) => {
    const { log } = open(generous);
    const [own] = await appendAll(log, streamOf(scope, 'mine'), 1);
    const [other] = await appendAll(log, streamOf(scope, 'theirs'), 1);
    await expect(log.readAfter(streamOf(scope, 'mine'), make(other!.cursor, own!.cursor), 10)).rejects.toMatchObject({
      code: 'RESYNC_REQUIRED',
    });
  });

  it('refuses a cursor from beyond the stream end with RESYNC_REQUIRED', async () => {
    const { log } = open(generous);
    const stream = streamOf(scope, 'orders');
    const [first] = await appendAll(log, stream, 1);
    const { epoch, position } = decodeCursor(first!.cursor);
    const beyond = position.includes('-') ? `${position.split('-')[0]}-999` : String(Number(position) + 5);
    await expect(log.readAfter(stream, encodeCursor(epoch, beyond), 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });

  it('refuses a cursor whose successors were trimmed and resumes the last one that lost nothing', async () => {
    const { log } = open({ maxEvents: 10, maxAgeMs: 3_600_000 });
    const stream = streamOf(scope, 'orders');
    const placed = await appendAll(log, stream, 40);
    // Events 31…40 are kept: after event 30 nothing is missing, after event 29 event 30 is.
    expect(await log.readAfter(stream, placed[29]!.cursor, 100)).toEqual(placed.slice(30));
    await expect(log.readAfter(stream, placed[28]!.cursor, 100)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    await expect(log.readAfter(stream, placed[0]!.cursor, 100)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });

  it('counts only the events `keep` keeps toward the limit of eventsBetween, however many others the streams hold', async () => {
    const { log } = open(generous);
    const now = Date.now();
    // More than Redis is read a page at a time, in another stream and before the wanted one in its own.
    await log.appendMany(streamOf(scope, 'telemetry'), Array.from({ length: 2_500 }, (_unused, n) => ({ ...unplaced(n, now), topic: 'telemetry' })));
    const orders = [...Array.from({ length: 2_500 }, (_unused, n) => ({ ...unplaced(n, now), type: 'order.viewed' })), { ...unplaced(9_999, now), type: 'order.created' }];
    await log.appendMany(streamOf(scope, 'orders'), orders);
    const found = await log.eventsBetween(() => true, (event) => event.type === 'order.created', now - 1_000, now + 1_000, 1);
    expect(found.map((event) => event.id)).toEqual(['evt_9999']);
  });

  it('returns eventsBetween oldest first across streams, each stream in its log order, and cuts at the limit keeping the oldest', async () => {
    const { log } = open(generous);
    const now = Date.now();
    const at = (topic: string, offset: number) => ({ ...unplaced(offset, now + offset), id: `${topic}#${offset}`, topic });
    // Appended stream by stream, not in time order: `zeta`'s event has the time of one of `orders`'
    // (same millisecond: the stream with the smaller key goes first), `audit`'s are out of time order
    // (its log order holds), and `orders`' last one is at `until` (left out).
    await log.appendMany(streamOf(scope, 'zeta'), [at('zeta', 2)]);
    await log.appendMany(streamOf(scope, 'invoices'), [at('invoices', 1), at('invoices', 3)]);
    await log.appendMany(streamOf(scope, 'audit'), [at('audit', 6), at('audit', 5)]);
    await log.appendMany(streamOf(scope, 'orders'), [at('orders', 0), at('orders', 2), at('orders', 4), at('orders', 10)]);
    const tenantB = { ...scope, tenant: 'b' };
    await log.appendMany(streamOf(tenantB, 'orders'), [{ ...at('orders', 1), id: 'tenant b', metadata: { timestamp: now + 1, scope: tenantB } }]);
    const ours = (eventScope: Scope) => eventScope.tenant === 'a';
    const between = async (limit: number) => (await log.eventsBetween(ours, () => true, now, now + 10, limit)).map((event) => event.id);
    expect(await between(100)).toEqual(['orders#0', 'invoices#1', 'orders#2', 'zeta#2', 'invoices#3', 'orders#4', 'audit#6', 'audit#5']);
    expect(await between(3)).toEqual(['orders#0', 'invoices#1', 'orders#2']);
  });
});

describe('memory event log', () => {
  it('publishes each appended event, in append order', async () => {
    const { log, published } = logs['memory']!(generous);
    const placed = await appendAll(log, streamOf(scope, 'orders'), 3);
    expect(published).toEqual(placed);
  });

  it('forgets events older than the retention age', async () => {
    const { log } = logs['memory']!({ maxEvents: 100, maxAgeMs: 60_000 });
    const stream = streamOf(scope, 'orders');
    const old = await log.append(stream, unplaced(1, Date.now() - 120_000));
    await log.append(stream, unplaced(2, Date.now() - 90_000));
    const fresh = await log.append(stream, unplaced(3));
    await expect(log.readAfter(stream, old.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(await log.readAfter(stream, fresh.cursor, 10)).toEqual([]);
  });

  it('keeps the head cursor of a quiet stream valid for the retention age, as Redis keeps its epoch, and not longer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 60_000 }, publish: () => undefined, sweepIntervalMs: 1_000 });
    onTestFinished(() => log.close());
    const quiet = streamOf(scope, 'quiet');
    const start = await log.head(quiet); // query { topicCursor }
    vi.advanceTimersByTime(59_000); // swept 59 times, younger than the retention age
    const first = await log.append(quiet, unplaced(1));
    expect(await log.readAfter(quiet, start, 10)).toEqual([first]);

    const idle = streamOf(scope, 'idle');
    const idleStart = await log.head(idle);
    vi.advanceTimersByTime(61_000);
    await log.append(idle, unplaced(1));
    await expect(log.readAfter(idle, idleStart, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });

  it('keeps the history of a quiet stream that is kept alive, while its events still age out and another stream is forgotten', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 60_000 }, publish: () => undefined, sweepIntervalMs: 1_000 });
    onTestFinished(() => log.close());
    const kept = streamOf(scope, 'kept');
    const other = streamOf(scope, 'other');
    const start = await log.head(kept);
    const first = await log.append(kept, unplaced(1));
    const forgotten = await log.append(other, unplaced(1));
    for (let step = 0; step < 4; step += 1) {
      vi.advanceTimersByTime(30_000);
      await log.keepAlive([kept, streamOf(scope, 'never-used')]);
    }
    await expect(log.readAfter(other, forgotten.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    const second = await log.append(kept, unplaced(2));
    expect(decodeCursor(second.cursor).epoch).toBe(decodeCursor(first.cursor).epoch);
    expect(await log.readAfter(kept, first.cursor, 10)).toEqual([second]);
    await expect(log.readAfter(kept, start, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });
});

describe('redis event log', () => {
  // Real time: the other stream's keys expire in Redis (400 ms), while the kept one's are extended.
  it('keeps the history of a quiet stream that is kept alive, while its events still age out and another stream is forgotten', async () => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => {
      await redis.quit();
    });
    const keyPrefix = uniquePrefix();
    const log = createRedisLog({ redis, retention: { maxEvents: 100, maxAgeMs: 400 }, keyPrefix });
    const kept = streamOf(scope, 'kept');
    const other = streamOf(scope, 'other');
    const start = await log.head(kept);
    const [first] = await appendAll(log, kept, 1);
    const [forgotten] = await appendAll(log, other, 1);
    await waitFor(
      async () => {
        await log.keepAlive([kept, streamOf(scope, 'never-used')]);
        return log.readAfter(other, forgotten!.cursor, 10).then(
          () => false,
          (error: { code?: string }) => error.code === 'RESYNC_REQUIRED',
        );
      },
      { intervalMs: 50, message: 'the stream not kept alive forgotten' },
    );
    const [second] = await appendAll(log, kept, 1);
    expect(decodeCursor(second!.cursor).epoch).toBe(decodeCursor(first!.cursor).epoch);
    expect(await log.readAfter(kept, first!.cursor, 10)).toEqual([second]);
    await expect(log.readAfter(kept, start, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    // Keeping alive a stream without a history creates none.
    expect(await redis.exists(`${keyPrefix}{${streamOf(scope, 'never-used').key}}:epoch`)).toBe(0);
  });

  // Evicted (volatile-lru): the log and its `used` mark gone, the epoch left. Kept alive, the epoch
  // would outlive its log, and a cursor would read on over the lost events.
  it('does not keep alive an epoch whose log is gone, also with its used mark: the loss shows as a new history', async () => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => {
      await redis.quit();
    });
    const keyPrefix = uniquePrefix();
    const log = createRedisLog({ redis, retention: { maxEvents: 100, maxAgeMs: 400 }, keyPrefix });
    const stream = streamOf(scope, 'evicted');
    const [first] = await appendAll(log, stream, 3);
    const key = (part: string) => `${keyPrefix}{${stream.key}}:${part}`;
    await redis.del(key('log'), key('used'));
    await waitFor(
      async () => {
        await log.keepAlive([stream]);
        return (await redis.exists(key('epoch'))) === 0;
      },
      { message: 'the epoch expired although kept alive' },
    );
    const [after] = await appendAll(log, stream, 1);
    expect(decodeCursor(after!.cursor).epoch).not.toBe(decodeCursor(first!.cursor).epoch);
    await expect(log.readAfter(stream, first!.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });

  it('publishes each appended event on the stream channel with its position', async () => {
    const redis = new Redis(testRedisUrl());
    const subscriber = new Redis(testRedisUrl());
    onTestFinished(async () => {
      await Promise.all([redis.quit(), subscriber.quit()]);
    });
    const keyPrefix = uniquePrefix();
    const log = createRedisLog({ redis, retention: generous, keyPrefix });
    const stream = streamOf(scope, 'orders');
    const frames: string[] = [];
    await subscriber.subscribe(`${keyPrefix}{${stream.key}}:live`);
    const received = new Promise<void>((resolve) =>
      subscriber.on('message', (_channel: string, frame: string) => {
        frames.push(frame);
        if (frames.length === 2) resolve();
      }),
    );
    const placed = await appendAll(log, stream, 2);
    await received;
    expect(frames.map((frame) => frame.split('\n')[1])).toEqual(placed.map((event) => decodeCursor(event.cursor).position));
  });

  it('starts a new epoch when Redis has forgotten the stream, so old cursors get RESYNC_REQUIRED', async () => {
    const { redis, keyPrefix, log } = openRedisLog();
    const stream = streamOf(scope, 'orders');
    const [before] = await appendAll(log, stream, 1);
    await redis.del(`${keyPrefix}{${stream.key}}:log`, `${keyPrefix}{${stream.key}}:epoch`);
    const [after] = await appendAll(log, stream, 1);
    expect(decodeCursor(after!.cursor).epoch).not.toBe(decodeCursor(before!.cursor).epoch);
    await expect(log.readAfter(stream, before!.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });

  it('starts a new epoch when Redis has forgotten the log but kept its epoch, so old cursors get RESYNC_REQUIRED', async () => {
    const { redis, keyPrefix, log } = openRedisLog();
    const stream = streamOf(scope, 'orders');
    const [first] = await appendAll(log, stream, 3);
    await redis.del(`${keyPrefix}{${stream.key}}:log`); // evicted alone (allkeys-lru)
    const start = await log.head(stream); // a topicCursor taken after the loss
    const [after] = await appendAll(log, stream, 1);
    expect(decodeCursor(after!.cursor).epoch).not.toBe(decodeCursor(first!.cursor).epoch);
    await expect(log.readAfter(stream, first!.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(await log.readAfter(stream, start, 10)).toEqual([after]);
  });

  it('keeps the epoch key a plain epoch, as instances of the earlier version read and write it, and continues their quiet epochs', async () => {
    const { redis, keyPrefix, log } = openRedisLog();
    const epochKey = (topic: string) => `${keyPrefix}{${streamOf(scope, topic).key}}:epoch`;
    const quiet = streamOf(scope, 'quiet');
    const start = await log.head(quiet);
    expect(await redis.get(epochKey('quiet'))).toBe(decodeCursor(start).epoch);
    const [placed] = await appendAll(log, quiet, 1);
    expect(await log.readAfter(quiet, start, 10)).toEqual([placed]);
    // A quiet topic's epoch as the earlier version's HEAD made it (no log, nothing else): continued.
    const earlier = newEpoch();
    await redis.set(epochKey('earlier'), earlier, 'PX', 60_000);
    const [first] = await appendAll(log, streamOf(scope, 'earlier'), 1);
    expect(decodeCursor(first!.cursor).epoch).toBe(earlier);
  });
});

/** A Redis log under a prefix of its own, with its connection (closed when the test ends). */
function openRedisLog(): { redis: Redis; keyPrefix: string; log: ReturnType<typeof createRedisLog> } {
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => {
    await redis.quit();
  });
  const keyPrefix = uniquePrefix();
  return { redis, keyPrefix, log: createRedisLog({ redis, retention: generous, keyPrefix }) };
}
