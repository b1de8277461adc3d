import type { RealtimeEvent, UnplacedEvent } from '../events/envelope.ts';
import type { Scope } from '../scope.ts';
import { streamOf, type StreamRef } from '../stream.ts';

/**
 * Per-stream history with bounded retention and an epoch: what makes delivery resumable.
 *
 * `append` places an event and publishes it to the stream's live channel as one step, so every
 * process sees a stream's live events in log order.
 */
export interface EventLog {
  append(stream: StreamRef, event: UnplacedEvent): Promise<RealtimeEvent>;
  /** Appends several events to one stream in one step, in order (as `append` each, one round trip). */
  appendMany(stream: StreamRef, events: readonly UnplacedEvent[]): Promise<RealtimeEvent[]>;
  /**
   * Events after `cursor`, oldest first, at most `limit`.
   * @throws TributaryError RESYNC_REQUIRED when the cursor is unknown, from another epoch, or
   *   older than the retained history (events after it are gone).
   */
  readAfter(stream: StreamRef, cursor: string, limit: number): Promise<readonly RealtimeEvent[]>;
  /**
   * The cursor of the stream's newest event (of an empty stream: its start), creating the
   * stream's epoch if it has none. Reading after it returns only later events.
   * @throws what `options.beforeCreate` throws: the stream is then left as it was (not created).
   */
  head(stream: StreamRef, options?: HeadOptions): Promise<string>;
  /**
   * Forgets the history of every stream `match` selects and gives it a new epoch, so every cursor
   * into it gets RESYNC_REQUIRED and live subscribers resync at its next event. For a source
   * that lost events before they reached the log (a replication slot recreated). Returns how many
   * streams were renewed.
   */
  renewEpochs(match: (scope: Scope, topic: string) => boolean): Promise<number>;
  /**
   * Keeps the histories of `streams` (ones someone listens to) as long from now as an append
   * would, without touching their events, which still age out: a quiet stream is not forgotten
   * while it has listeners, so its next event continues its history instead of starting a new one
   * (which would resync every subscriber holding a position). A stream without a history, or one
   * whose events were lost (a log gone while its epoch is not), is left as it is.
   */
  keepAlive(streams: readonly StreamRef[]): Promise<void>;
  /** What the log keeps: callers that keep streams alive do so well within `maxAgeMs`. */
  readonly retention: LogRetention;
  /**
   * Events still retained in the streams `match` selects whose time is in `[since, until)` (ms) and
   * that `keep` keeps, oldest first (`mergeOldestFirst`), the first `limit`. Only kept events count
   * toward the limit, so a busy stream the caller does not want cannot crowd out those it does.
   * For replays (webhooks): a caller that must know whether there were more asks for one more.
   */
  eventsBetween(
    match: (scope: Scope, topic: string) => boolean,
    keep: (event: RealtimeEvent) => boolean,
    since: number,
    until: number,
    limit: number,
  ): Promise<RealtimeEvent[]>;
  close(): Promise<void>;
}

export interface HeadOptions {
  /**
   * Asked before `head` creates the stream — it has no history that may continue (never had one,
   * expired, forgotten) — and only then: a rejection refuses the creation, and `head` rejects with
   * it. A stream can be created by another caller meanwhile: it is asked at most once per `head`,
   * and may be asked for a stream that then exists. For a budget of new streams per caller
   * (`TOPIC_NEW_STREAMS_PER_MINUTE`): every stream costs the log memory (Redis: two keys) for its
   * retention age. @default none: the stream is created
   */
  readonly beforeCreate?: () => Promise<void>;
}

export interface LogRetention {
  /**
   * Events kept per stream, at least — but the embedded log keeps fewer when all its streams
   * together are over its byte budget (`MemoryLogOptions.maxBytes`), and the Redis log when one
   * stream's events are over its own (`RedisLogOptions.maxStreamBytes`). @default 10000
   */
  readonly maxEvents: number;
  /** How long events are kept, in ms; a stream idle that long (no append, not kept alive) is forgotten with its epoch. @default 1 hour */
  readonly maxAgeMs: number;
}

/**
 * The order of `eventsBetween`, built a stream at a time: `found` with one more stream's events
 * merged in, the first `limit` kept. Oldest first by event time; a stream's events keep their log
 * order (the order its subscribers saw), even where their times do not (instances whose clocks
 * differ appending to one stream). Of two streams' events of the same millisecond, the one of the
 * stream with the smaller key goes first: the log keeps no order between streams, and the key
 * gives the same answer whichever stream is read first.
 */
export function mergeOldestFirst(found: readonly RealtimeEvent[], stream: readonly RealtimeEvent[], limit: number): RealtimeEvent[] {
  return mergeInOrder(found, stream, earlier, limit);
}

/** `a` and `b` merged, each in its own order: `b`'s next goes first when `before` says so, else `a`'s. */
export function mergeInOrder<T>(a: readonly T[], b: readonly T[], before: (x: T, y: T) => boolean, limit = Number.POSITIVE_INFINITY): T[] {
  const merged: T[] = [];
  let i = 0;
  let j = 0;
  while (merged.length < limit && (i < a.length || j < b.length)) {
    if (j < b.length && (i === a.length || before(b[j]!, a[i]!))) merged.push(b[j++]!);
    else merged.push(a[i++]!);
  }
  return merged;
}

function earlier(x: RealtimeEvent, y: RealtimeEvent): boolean {
  if (x.metadata.timestamp !== y.metadata.timestamp) return x.metadata.timestamp < y.metadata.timestamp;
  return streamOf(x.metadata.scope, x.topic).key < streamOf(y.metadata.scope, y.topic).key;
}
