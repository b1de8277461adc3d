/**
 * The embedded log's memory bounds: a byte budget for every stream's events together and a cap on
 * the number of streams, so that no client can grow the process until it dies (any token that may
 * read `orders.*` names as many streams as it likes; 60 KB payloads fill 10,000 events a topic).
 * Whatever the bounds drop shows as RESYNC_REQUIRED to a cursor that needed it, never as a gap.
 */
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import { decodeCursor } from '../../src/pipeline/log/cursor.ts';
import { createMemoryLog, type MemoryLogOptions } from '../../src/pipeline/log/memory-log.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

const scope = { app: 'shop', env: 'prod', tenant: 'a' };
const KIB = 1024;

/** An event whose payload is about `bytes` of JSON. */
function sized(n: number, bytes: number): UnplacedEvent {
  return { id: `evt_${n}`, topic: 'orders', source: 'socket', type: 'message', payload: { n, blob: 'x'.repeat(bytes) }, metadata: { timestamp: Date.now(), scope } };
}

function memoryLog(options: Partial<MemoryLogOptions>) {
  const log = createMemoryLog({ retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 }, publish: () => undefined, ...options });
  onTestFinished(() => log.close());
  return log;
}

interface Warning {
  readonly level: number;
  readonly msg: string;
  readonly evictedEvents?: number;
  readonly evictedStreams?: number;
}

function warningsTo(lines: Warning[]) {
  return createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Warning) } });
}

describe('memory event log bounds', () => {
  it('drops the oldest events of all streams first beyond its byte budget, and a cursor that needed them gets RESYNC_REQUIRED', async () => {
    const log = memoryLog({ maxBytes: 100 * KIB });
    const a = streamOf(scope, 'orders.a');
    const b = streamOf(scope, 'orders.b');
    const aStart = await log.head(a);
    const bStart = await log.head(b);
    const placed = [];
    // 20 events of about 10 KiB, alternating between the streams: about twice the budget.
    for (let n = 0; n < 20; n += 1) placed.push(await log.append(n % 2 === 0 ? a : b, sized(n, 10 * KIB)));

    await expect(log.readAfter(a, aStart, 100)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    await expect(log.readAfter(a, aStart, 100)).rejects.toThrow(/events after it have expired/);
    await expect(log.readAfter(b, bStart, 100)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    await expect(log.readAfter(b, bStart, 100)).rejects.toThrow(/events after it have expired/);
    // What is left is the newest events of both streams, as many as fit in the budget, without a hole.
    // (eventsBetween orders events of one millisecond by stream, not by append.)
    const kept = (await log.eventsBetween(() => true, () => true, 0, Number.POSITIVE_INFINITY, 100)).map((event) => event.id).sort();
    expect(kept).toEqual(placed.slice(-kept.length).map((event) => event.id).sort());
    expect(kept.length * 10 * KIB).toBeLessThanOrEqual(100 * KIB);
    expect(kept.length).toBeGreaterThanOrEqual(8);
    const oldestKept = placed.length - kept.length;
    const streamOfIndex = (index: number) => (index % 2 === 0 ? a : b);
    // The cursor right before a stream's oldest kept event resumes; the one before that resyncs.
    expect((await log.readAfter(streamOfIndex(oldestKept), placed[oldestKept - 2]!.cursor, 100))[0]).toEqual(placed[oldestKept]);
    await expect(log.readAfter(streamOfIndex(oldestKept), placed[oldestKept - 4]!.cursor, 100)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
  });

  it('drops an event bigger than the whole budget at once, after publishing it live', async () => {
    const live: string[] = [];
    const log = memoryLog({ maxBytes: 16 * KIB, publish: (_stream, event) => void live.push(event.id) });
    const a = streamOf(scope, 'orders.a');
    const start = await log.head(a);
    const big = await log.append(a, sized(1, 64 * KIB));
    expect(live).toEqual(['evt_1']);
    await expect(log.readAfter(a, start, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    const next = await log.append(a, sized(2, 10));
    expect(await log.readAfter(a, big.cursor, 10)).toEqual([next]);
  });

  it('gives back the budget of events that retention or a renewed epoch dropped', async () => {
    const log = memoryLog({ maxBytes: 100 * KIB, retention: { maxEvents: 4, maxAgeMs: 3_600_000 } });
    const a = streamOf(scope, 'orders.a');
    const b = streamOf(scope, 'orders.b');
    const c = streamOf(scope, 'orders.c');
    for (let n = 0; n < 50; n += 1) await log.append(a, sized(n, 8 * KIB));
    const bStart = await log.head(b);
    const ofB = [];
    for (let n = 0; n < 4; n += 1) ofB.push(await log.append(b, sized(100 + n, 8 * KIB)));
    // 4 events of a (retention kept no more) and 4 of b fit: none of b's was dropped for the budget.
    expect(await log.readAfter(b, bStart, 10)).toEqual(ofB);

    // Without a's 4, c's 4 fit beside b's as well.
    await log.renewEpochs((_scope, topic) => topic === 'orders.a');
    const cStart = await log.head(c);
    const ofC = [];
    for (let n = 0; n < 4; n += 1) ofC.push(await log.append(c, sized(200 + n, 8 * KIB)));
    expect(await log.readAfter(b, bStart, 10)).toEqual(ofB);
    expect(await log.readAfter(c, cStart, 10)).toEqual(ofC);
  });

  it('still drops the oldest retained event first after retention dropped thousands before it', async () => {
    const log = memoryLog({ maxBytes: 20 * KIB, retention: { maxEvents: 10, maxAgeMs: 3_600_000 } });
    const a = streamOf(scope, 'orders.a');
    const b = streamOf(scope, 'orders.b');
    const placed = [];
    for (let n = 0; n < 5_000; n += 1) placed.push(await log.append(a, sized(n, 10)));
    for (let n = 0; n < 8; n += 1) placed.push(await log.append(b, sized(10_000 + n, 2 * KIB)));

    const kept = (await log.eventsBetween(() => true, () => true, 0, Number.POSITIVE_INFINITY, 100)).map((event) => event.id).sort();
    expect(kept).toEqual(placed.slice(-kept.length).map((event) => event.id).sort());
    expect(kept.length).toBeGreaterThanOrEqual(7);
    expect(kept.length).toBeLessThan(18);
  });

  it('keeps at most maxStreams streams: a flood of new names forgets the oldest empty ones, not a history or a listened stream', async () => {
    const log = memoryLog({ maxStreams: 100 });
    const history = streamOf(scope, 'orders.history');
    const listened = streamOf(scope, 'orders.listened');
    const first = await log.append(history, sized(1, 10));
    const listenedHead = await log.head(listened);
    await log.keepAlive([listened]);

    const flood: string[] = [];
    for (let n = 0; n < 1_000; n += 1) flood.push(await log.head(streamOf(scope, `orders.${n}`)));

    // The oldest names of the flood were forgotten: a new history for each, so their cursors resync.
    await expect(log.readAfter(streamOf(scope, 'orders.0'), flood[0]!, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    await expect(log.readAfter(streamOf(scope, 'orders.899'), flood[899]!, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    // The newest are kept, with the history and the listened stream: 98 + 2 = 100.
    expect(await log.readAfter(streamOf(scope, 'orders.902'), flood[902]!, 10)).toEqual([]);
    expect(await log.readAfter(streamOf(scope, 'orders.999'), flood[999]!, 10)).toEqual([]);
    const second = await log.append(history, sized(2, 10));
    expect(await log.readAfter(history, first.cursor, 10)).toEqual([second]);
    expect(decodeCursor(await log.head(listened)).epoch).toBe(decodeCursor(listenedHead).epoch);
    expect(await log.readAfter(listened, listenedHead, 10)).toEqual([]);
  });

  it('forgets the least recently touched stream with events when none is empty, still sparing a listened one', async () => {
    const log = memoryLog({ maxStreams: 3 });
    const a = streamOf(scope, 'orders.a');
    const b = streamOf(scope, 'orders.b');
    const listened = streamOf(scope, 'orders.listened');
    const listenedFirst = await log.append(listened, sized(0, 10));
    await log.keepAlive([listened]);
    const aFirst = await log.append(a, sized(1, 10));
    const bFirst = await log.append(b, sized(2, 10));
    const aSecond = await log.append(a, sized(3, 10)); // a is touched after b now

    await log.append(streamOf(scope, 'orders.c'), sized(4, 10));

    await expect(log.readAfter(b, bFirst.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(await log.readAfter(a, aFirst.cursor, 10)).toEqual([aSecond]);
    expect(await log.readAfter(listened, listenedFirst.cursor, 10)).toEqual([]);
  });

  it('forgets a listened stream after the others once nothing keeps it alive any more', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const log = memoryLog({ maxStreams: 2, retention: { maxEvents: 100, maxAgeMs: 60_000 } });
    const once = streamOf(scope, 'orders.once');
    const other = streamOf(scope, 'orders.other');
    const onceFirst = await log.append(once, sized(1, 10));
    await log.keepAlive([once]);
    // Not kept alive for longer than two of the dispatcher's ticks (a quarter of the age each).
    vi.advanceTimersByTime(40_000);
    const otherFirst = await log.append(other, sized(2, 10));

    await log.head(streamOf(scope, 'orders.new'));

    await expect(log.readAfter(once, onceFirst.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(await log.readAfter(other, otherFirst.cursor, 10)).toEqual([]);
  });

  it('warns when the bounds drop events or streams, at most once a minute, with what was dropped since', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const lines: Warning[] = [];
    const log = memoryLog({ maxBytes: 16 * KIB, maxStreams: 10, logger: warningsTo(lines) });
    const a = streamOf(scope, 'orders.a');
    for (let n = 0; n < 10; n += 1) await log.append(a, sized(n, 4 * KIB));
    for (let n = 0; n < 20; n += 1) await log.head(streamOf(scope, `orders.${n}`));
    const warnings = () => lines.filter((line) => line.level === 40);
    expect(warnings()).toHaveLength(1);

    vi.advanceTimersByTime(60_000);
    await log.append(a, sized(10, 4 * KIB));
    expect(warnings()).toHaveLength(2);
    // The second names what the first could not: the evictions of the minute between.
    expect(warnings()[1]!.evictedEvents).toBeGreaterThan(0);
    expect(warnings()[1]!.evictedStreams).toBeGreaterThan(0);
    expect(warnings()[0]!.msg).toMatch(/EVENT_LOG_MAX_BYTES/);
  });
});
