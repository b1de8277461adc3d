import type { Logger } from '../../logger.ts';
import type { RealtimeEvent, UnplacedEvent } from '../events/envelope.ts';
import type { StreamRef } from '../stream.ts';
import { decodeCursor, encodeCursor, newEpoch, NOT_THIS_HISTORY, resyncRequired } from './cursor.ts';
import { mergeOldestFirst, type EventLog, type LogRetention } from './event-log.ts';

export interface MemoryLogOptions {
  readonly retention: LogRetention;
  /** Publishes an appended event to live subscribers (the memory bus's `deliver`). */
  readonly publish: (stream: StreamRef, event: RealtimeEvent) => void;
  /** How often idle streams are forgotten, in ms. @default 60000 */
  readonly sweepIntervalMs?: number;
  /**
   * Estimated bytes of events all streams keep together (`EVENT_LOG_MAX_BYTES`); beyond it the
   * oldest events of any stream are dropped first, whatever `retention` would keep. @default 256 MiB
   */
  readonly maxBytes?: number;
  /**
   * Streams kept, empty ones too (`EVENT_LOG_MAX_STREAMS`): a new one beyond it forgets the least
   * recently touched empty stream not kept alive, else the least recently touched one with events
   * not kept alive, else the least recently kept alive. @default 100000
   */
  readonly maxStreams?: number;
  /** Where evictions by these bounds are reported: a warning a minute at most. */
  readonly logger?: Logger;
}

/** `empty` and `filled`: not kept alive, without and with events; `listened`: kept alive (it has subscribers). */
type Rank = 'empty' | 'filled' | 'listened';

/** One stream's ring: events[start…] hold positions firstSeq…nextSeq-1; position 0 is the start. */
interface MemoryStream {
  readonly ref: StreamRef;
  readonly epoch: string;
  events: RealtimeEvent[];
  /** The estimated size of each event, at the same index as `events`. */
  sizes: number[];
  start: number;
  firstSeq: number;
  nextSeq: number;
  /** When the stream was created, last appended to or kept alive (ms): its epoch is kept `maxAgeMs` from then. */
  touchedAt: number;
  /** When it was last kept alive (ms). */
  keptAliveAt: number;
  rank: Rank;
  /** Forgotten: its entries in the append order are dead. */
  gone: boolean;
}

const MIB = 1024 * 1024;
/** The envelope's objects, cursor and metadata, and the log's own entry, beside the payload's JSON. */
const EVENT_OVERHEAD_BYTES = 512;
const WARN_EVERY_MS = 60_000;
/** What a dropped event's slot holds until its ring is compacted. */
const DROPPED: RealtimeEvent = {
  id: '',
  topic: '',
  source: 'system',
  type: '',
  payload: {},
  metadata: { timestamp: 0, scope: { app: '', env: '', tenant: '' } },
  cursor: '',
};

/**
 * The embedded mode's log: a bounded ring per stream, lost with the process. A new process has
 * new epochs, so cursors from before a restart get RESYNC_REQUIRED rather than a silent gap.
 *
 * Any reader names streams (`topicCursor` on `orders.<anything>` makes one) and any publisher
 * fills them, so the whole log is bounded too, by bytes and by streams: what the bounds drop is
 * dropped as retention drops it (an older cursor gets RESYNC_REQUIRED: its successors expired, or
 * its stream has a new history), never as a gap.
 */
export function createMemoryLog(options: MemoryLogOptions): EventLog {
  const { maxEvents, maxAgeMs } = options.retention;
  const maxBytes = options.maxBytes ?? 256 * MIB;
  const maxStreams = options.maxStreams ?? 100_000;
  const streams = new Map<string, MemoryStream>();
  // Each rank in the order its streams were last touched (a Set iterates in insertion order, and
  // re-adding moves a stream to the end), so the one to forget is a Set's first, in O(1).
  const ranks: Record<Rank, Set<MemoryStream>> = { empty: new Set(), filled: new Set(), listened: new Set() };
  // Every retained event's stream and position in the order of appending, with dead entries
  // (events gone by retention, streams forgotten) skipped when met and compacted away once they
  // are half: the oldest event of the whole log in O(1) amortized.
  let order: { streams: MemoryStream[]; seqs: number[]; head: number } = { streams: [], seqs: [], head: 0 };
  let bytes = 0;
  let retained = 0;
  const evicted = { events: 0, streams: 0, warnedAt: Number.NEGATIVE_INFINITY };

  const rankAs = (stream: MemoryStream, rank: Rank) => {
    ranks[stream.rank].delete(stream);
    stream.rank = rank;
    ranks[rank].add(stream);
  };

  const dropFirst = (stream: MemoryStream) => {
    bytes -= stream.sizes[stream.start]!;
    // The slot is reused only at the next compaction: until then it must not hold the event (up
    // to 1,024 dropped ones of 64 KiB each were kept alive, beyond the budget, otherwise).
    stream.events[stream.start] = DROPPED;
    retained -= 1;
    stream.start += 1;
    stream.firstSeq += 1;
  };

  const afterDrops = (stream: MemoryStream) => {
    // Compact once the dead prefix dominates, so trimming stays O(1) amortized.
    if (stream.start > 1024 && stream.start * 2 > stream.events.length) {
      stream.events = stream.events.slice(stream.start);
      stream.sizes = stream.sizes.slice(stream.start);
      stream.start = 0;
    }
    if (stream.start === stream.events.length && stream.rank === 'filled') rankAs(stream, 'empty');
  };

  const trim = (stream: MemoryStream, now: number) => {
    const oldest = now - maxAgeMs;
    while (
      stream.start < stream.events.length &&
      (stream.events.length - stream.start > maxEvents || stream.events[stream.start]!.metadata.timestamp < oldest)
    ) {
      dropFirst(stream);
    }
    afterDrops(stream);
  };

  const forget = (stream: MemoryStream) => {
    streams.delete(stream.ref.key);
    ranks[stream.rank].delete(stream);
    stream.gone = true;
    for (let index = stream.start; index < stream.events.length; index += 1) bytes -= stream.sizes[index]!;
    retained -= stream.events.length - stream.start;
    // Its entries in `order` still point at it until compacted: they must not hold its events.
    stream.events = [];
    stream.sizes = [];
    stream.start = 0;
  };

  /**
   * The stream to forget for a new one. Kept alive last: a stream not kept alive for two of the
   * dispatcher's ticks (a quarter of the age each) has no subscribers left, and counts as the rest.
   */
  const victim = (now: number): MemoryStream | undefined => {
    const listened = first(ranks.listened);
    const lapsed = listened !== undefined && now - listened.keptAliveAt > maxAgeMs / 2 ? listened : undefined;
    const lapsedEmpty = lapsed !== undefined && lapsed.start === lapsed.events.length ? lapsed : undefined;
    return older(first(ranks.empty), lapsedEmpty) ?? older(first(ranks.filled), lapsed) ?? listened;
  };

  const warn = (now: number) => {
    if (evicted.events + evicted.streams === 0 || now - evicted.warnedAt < WARN_EVERY_MS) return;
    evicted.warnedAt = now;
    options.logger?.warn(
      { evictedEvents: evicted.events, evictedStreams: evicted.streams, bytes, maxBytes, streams: streams.size, maxStreams },
      'the event log is over EVENT_LOG_MAX_BYTES or EVENT_LOG_MAX_STREAMS: dropping the oldest events or least recently used streams, so cursors into them get RESYNC_REQUIRED',
    );
    evicted.events = 0;
    evicted.streams = 0;
  };

  const makeRoom = (now: number) => {
    while (streams.size >= maxStreams) {
      const stream = victim(now);
      if (!stream) break;
      forget(stream);
      evicted.streams += 1;
    }
    warn(now);
  };

  const compactOrder = () => {
    if (order.streams.length <= 2 * retained + 1024) return;
    const kept: typeof order = { streams: [], seqs: [], head: 0 };
    for (let index = order.head; index < order.streams.length; index += 1) {
      const stream = order.streams[index]!;
      const seq = order.seqs[index]!;
      if (!stream.gone && seq >= stream.firstSeq) {
        kept.streams.push(stream);
        kept.seqs.push(seq);
      }
    }
    order = kept;
  };

  const overBudget = () => {
    while (bytes > maxBytes && order.head < order.streams.length) {
      const stream = order.streams[order.head]!;
      const seq = order.seqs[order.head]!;
      order.head += 1;
      // Older events of its stream came earlier in `order`, so a live entry is its stream's first.
      if (stream.gone || seq < stream.firstSeq) continue;
      dropFirst(stream);
      afterDrops(stream);
      evicted.events += 1;
    }
    compactOrder();
  };

  const streamFor = (ref: StreamRef): MemoryStream => {
    let stream = streams.get(ref.key);
    if (!stream) {
      const now = Date.now();
      if (streams.size >= maxStreams) makeRoom(now);
      stream = { ref, epoch: newEpoch(), events: [], sizes: [], start: 0, firstSeq: 1, nextSeq: 1, touchedAt: now, keptAliveAt: Number.NEGATIVE_INFINITY, rank: 'empty', gone: false };
      streams.set(ref.key, stream);
      ranks.empty.add(stream);
    }
    return stream;
  };

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const stream of streams.values()) {
      trim(stream, now);
      // As the Redis log's epoch key, which expires `maxAgeMs` after its creation or last append:
      // a head cursor of a quiet stream (`topicCursor`) stays valid that long.
      if (stream.start === stream.events.length && now - stream.touchedAt >= maxAgeMs) forget(stream);
    }
    compactOrder();
  }, options.sweepIntervalMs ?? 60_000);
  sweep.unref();

  const place = (ref: StreamRef, unplaced: UnplacedEvent): RealtimeEvent => {
    const stream = streamFor(ref);
    const event: RealtimeEvent = { ...unplaced, cursor: encodeCursor(stream.epoch, String(stream.nextSeq)) };
    const size = estimatedBytes(event);
    stream.events.push(event);
    stream.sizes.push(size);
    order.streams.push(stream);
    order.seqs.push(stream.nextSeq);
    bytes += size;
    retained += 1;
    stream.nextSeq += 1;
    stream.touchedAt = Date.now();
    if (stream.rank !== 'listened') rankAs(stream, 'filled');
    trim(stream, unplaced.metadata.timestamp);
    if (bytes > maxBytes) {
      overBudget();
      warn(stream.touchedAt);
    }
    // Events trimmed by count leave dead entries even when the budget is not reached.
    compactOrder();
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
        if (!stream || stream.epoch !== epoch) throw resyncRequired(NOT_THIS_HISTORY);
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
    async head(ref, options) {
      // Asked only for a stream to create; one made meanwhile (during the await) is taken as it is.
      if (options?.beforeCreate && !streams.has(ref.key)) await options.beforeCreate();
      const stream = streamFor(ref);
      return encodeCursor(stream.epoch, String(stream.nextSeq - 1));
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
        if (!stream) continue;
        stream.touchedAt = now;
        stream.keptAliveAt = now;
        rankAs(stream, 'listened');
      }
      return Promise.resolve();
    },
    retention: options.retention,
    renewEpochs(match) {
      let renewed = 0;
      for (const stream of streams.values()) {
        if (!match(stream.ref.scope, stream.ref.topic)) continue;
        forget(stream);
        renewed += 1;
      }
      compactOrder();
      return Promise.resolve(renewed);
    },
    close() {
      clearInterval(sweep);
      for (const stream of streams.values()) forget(stream);
      order = { streams: [], seqs: [], head: 0 };
      return Promise.resolve();
    },
  };
}

/** Of two streams, the one touched less recently. */
function older(a: MemoryStream | undefined, b: MemoryStream | undefined): MemoryStream | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return b.touchedAt < a.touchedAt ? b : a;
}

function first<T>(set: Set<T>): T | undefined {
  for (const item of set) return item;
  return undefined;
}

/**
 * What an event holds in memory, roughly and cheaply: its JSON (the size of its strings and
 * numbers, as V8 keeps them) and a fixed overhead. An event that cannot be serialized counts as
 * a payload at the default publish limit.
 */
function estimatedBytes(event: RealtimeEvent): number {
  try {
    return EVENT_OVERHEAD_BYTES + JSON.stringify(event).length;
  } catch {
    return EVENT_OVERHEAD_BYTES + 64 * 1024;
  }
}
