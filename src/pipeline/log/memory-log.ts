import type { RealtimeEvent, UnplacedEvent } from '../events/envelope.ts';
import type { StreamRef } from '../stream.ts';
import { decodeCursor, encodeCursor, newEpoch, resyncRequired } from './cursor.ts';
import { mergeOldestFirst, type EventLog, type LogRetention } from './event-log.ts';

export interface MemoryLogOptions {
  readonly retention: LogRetention;
  /** Publishes an appended event to live subscribers (the memory bus's `deliver`). */
  readonly publish: (stream: StreamRef, event: RealtimeEvent) => void;
  /** How often idle streams are forgotten, in ms. @default 60000 */
  readonly sweepIntervalMs?: number;
}

/** One stream's ring: events[start…] hold positions firstSeq…nextSeq-1; position 0 is the start. */
interface MemoryStream {
  readonly epoch: string;
  events: RealtimeEvent[];
  start: number;
  firstSeq: number;
  nextSeq: number;
  /** When the stream was created, last appended to or kept alive (ms): its epoch is kept `maxAgeMs` from then. */
  touchedAt: number;
}

/**
 * The embedded mode's log: a bounded ring per stream, lost with the process. A new process has
 * new epochs, so cursors from before a restart get RESYNC_REQUIRED rather than a silent gap.
 */
export function createMemoryLog(options: MemoryLogOptions): EventLog {
  const { maxEvents, maxAgeMs } = options.retention;
  const streams = new Map<string, MemoryStream & { readonly ref: StreamRef }>();

  const trim = (stream: MemoryStream, now: number) => {
    const oldest = now - maxAgeMs;
    while (
      stream.start < stream.events.length &&
      (stream.events.length - stream.start > maxEvents || stream.events[stream.start]!.metadata.timestamp < oldest)
    ) {
      stream.start += 1;
      stream.firstSeq += 1;
    }
    // Compact once the dead prefix dominates, so trimming stays O(1) amortized.
    if (stream.start > 1024 && stream.start * 2 > stream.events.length) {
      stream.events = stream.events.slice(stream.start);
      stream.start = 0;
    }
  };

  const streamFor = (ref: StreamRef): MemoryStream => {
    let stream = streams.get(ref.key);
    if (!stream) {
      stream = { ref, epoch: newEpoch(), events: [], start: 0, firstSeq: 1, nextSeq: 1, touchedAt: Date.now() };
      streams.set(ref.key, stream);
    }
    return stream;
  };

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, stream] of streams) {
      trim(stream, now);
      // As the Redis log's epoch key, which expires `maxAgeMs` after its creation or last append:
      // a head cursor of a quiet stream (`topicCursor`) stays valid that long.
      if (stream.start === stream.events.length && now - stream.touchedAt >= maxAgeMs) streams.delete(key);
    }
  }, options.sweepIntervalMs ?? 60_000);
  sweep.unref();

  const place = (ref: StreamRef, unplaced: UnplacedEvent): RealtimeEvent => {
    const stream = streamFor(ref);
    const event: RealtimeEvent = { ...unplaced, cursor: encodeCursor(stream.epoch, String(stream.nextSeq)) };
    stream.events.push(event);
    stream.nextSeq += 1;
    stream.touchedAt = Date.now();
    trim(stream, unplaced.metadata.timestamp);
    options.publish(ref, event);
    return event;
  };

  return {
    append: (ref, unplaced) => Promise.resolve(place(ref, unplaced)),
    appendMany: (ref, events) => Promise.resolve(events.map((unplaced) => place(ref, unplaced))),
    readAfter(ref, cursor, limit) {
      try {
        const { epoch, position } = decodeCursor(cursor);
        const stream = streams.get(ref.key);
        if (!stream || stream.epoch !== epoch) throw resyncRequired('the stream has a new history');
        if (position.includes('-')) throw resyncRequired('unknown cursor');
        const seq = Number(position);
        if (seq >= stream.nextSeq) throw resyncRequired('unknown cursor');
        trim(stream, Date.now());
        if (seq + 1 < stream.firstSeq) throw resyncRequired('events after it have expired');
        const from = stream.start + (seq + 1 - stream.firstSeq);
        return Promise.resolve(stream.events.slice(from, from + limit));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    },
    head(ref) {
      const stream = streamFor(ref);
      return Promise.resolve(encodeCursor(stream.epoch, String(stream.nextSeq - 1)));
    },
    eventsBetween(match, keep, since, until, limit) {
      let found: RealtimeEvent[] = [];
      for (const stream of streams.values()) {
        if (!match(stream.ref.scope, stream.ref.topic)) continue;
        // A stream's events after its first `limit` kept ones cannot be among the first `limit` of all.
        const kept: RealtimeEvent[] = [];
        for (let index = stream.start; index < stream.events.length && kept.length < limit; index += 1) {
          const event = stream.events[index]!;
          if (event.metadata.timestamp >= since && event.metadata.timestamp < until && keep(event)) kept.push(event);
        }
        if (kept.length > 0) found = mergeOldestFirst(found, kept, limit);
      }
      return Promise.resolve(found);
    },
    keepAlive(refs) {
      const now = Date.now();
      for (const ref of refs) {
        const stream = streams.get(ref.key);
        if (stream) stream.touchedAt = now;
      }
      return Promise.resolve();
    },
    retention: options.retention,
    renewEpochs(match) {
      let renewed = 0;
      for (const [key, stream] of streams) {
        if (!match(stream.ref.scope, stream.ref.topic)) continue;
        streams.delete(key);
        renewed += 1;
      }
      return Promise.resolve(renewed);
    },
    close() {
      clearInterval(sweep);
      streams.clear();
      return Promise.resolve();
    },
  };
}
