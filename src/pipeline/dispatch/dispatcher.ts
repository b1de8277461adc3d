import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { AnalyticsRecorder } from '../analytics/recorder.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { decodeCursor } from '../log/cursor.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventBus } from '../pubsub/event-bus.ts';
import { within } from '../coordination/within.ts';
import type { StreamRef } from '../stream.ts';
import { createCatchUp } from './catch-up.ts';
import { createFanOut, type Stream, type Subscriber } from './fan-out.ts';
import type { Admission, CohortSpec, SubscriberSink } from './subscription-contract.ts';

/**
 * Topic → cohorts → subscribers (ARCHITECTURE §1), the dispatcher's part of the subscription
 * contract (`subscription-contract.ts`).
 *
 * A cohort is the subscribers of one stream that share an operation, its variables and return
 * mode: for each event the cohort filters once, renders (executes and serializes) once, and
 * hands the same JSON to each subscriber's sink (`fan-out.ts`). Resume after a cursor and
 * recovery after a bus outage read the log up to the live flow with no gap and no duplicate at
 * the seam (`catch-up.ts`). This module joins streams on the bus and watches its link.
 */
export interface Dispatcher {
  subscribe(request: DispatchRequest): Promise<DispatchSubscription>;
  stats(): DispatcherStats;
  close(): Promise<void>;
}

export interface DispatchRequest {
  readonly stream: StreamRef;
  readonly cohort: CohortSpec;
  /** Resume after this cursor; live from now when absent. */
  readonly after: string | undefined;
  readonly sink: SubscriberSink;
  /** Rendered and delivered before anything from the stream (a snapshot). */
  readonly initial?: RealtimeEvent | undefined;
  /** Per-subscriber admission of each event, after the cohort rendered it once. */
  readonly admit?: Admission | undefined;
  /** Asked before joining a stream this instance does not hold: a rejection is the subscribe's. */
  readonly beforeNewStream?: (() => Promise<void>) | undefined;
}

export interface DispatchSubscription {
  /** Stops delivery; idempotent. */
  dispose(): void;
}

export interface DispatcherStats {
  readonly streams: number;
  readonly cohorts: number;
  readonly subscribers: number;
  /**
   * Streams whose live channel is still being subscribed: their subscribers are counted, but one
   * without a cursor receives only what is published once the join is done.
   */
  readonly joining: number;
}

export interface DispatcherOptions {
  readonly log: EventLog;
  readonly bus: EventBus;
  readonly logger: Logger;
  /** Events read from the log per request while catching up. @default 500 */
  readonly pageSize?: number;
  /**
   * Live events held back per catching-up subscriber (and per stream during a bus outage) before
   * it re-reads the log instead; each overflow is counted in `holdBackOverflows`. @default 1000
   */
  readonly holdBackLimit?: number;
  /** @default no metrics */
  readonly metrics?: Pick<Metrics, 'holdBackOverflows' | 'eventsOutOfScope'>;
  /** Counts deliveries, bytes, publish → socket latency and resyncs per topic. @default no analytics */
  readonly analytics?: Pick<AnalyticsRecorder, 'delivered' | 'resync'> | undefined;
  /**
   * How often the joined streams are kept alive in the log (`EventLog.keepAlive`), in ms: a quiet
   * topic someone listens to keeps its history. @default a quarter of the log's retention age
   */
  readonly keepAliveMs?: number;
  /**
   * How long a stream's join waits for the bus to subscribe before its subscribers fail with
   * UNAVAILABLE, in ms. A SUBSCRIBE sent while the bus's connection is down waits in its queue
   * until Redis is back, however long that takes; the client is told to retry instead.
   * @default 5000
   */
  readonly joinTimeoutMs?: number;
  /**
   * How long a stream's catch-up after a bus outage waits for a live subscriber's socket to drain
   * before that subscriber catches up on its own, at its own pace, in ms (`catch-up.ts`). @default 2000
   */
  readonly replayStallMs?: number;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { log, bus } = options;
  const logger = componentLogger(options.logger, 'dispatcher');
  const fanOut = createFanOut({ logger, holdBackLimit: options.holdBackLimit ?? 1000, metrics: options.metrics, analytics: options.analytics });
  const closing = new AbortController();
  const catchUp = createCatchUp({ log, fanOut, logger, pageSize: options.pageSize ?? 500, signal: closing.signal, stallMs: options.replayStallMs ?? 2000 });
  const { streams } = fanOut;
  const joinTimeoutMs = options.joinTimeoutMs ?? 5000;

  let keeping = false;
  const keepAlive = setInterval(() => {
    if (keeping || streams.size === 0) return;
    keeping = true;
    log
      .keepAlive([...streams.values()].map((stream) => stream.ref))
      .catch((error: unknown) => logger.warn({ err: error, streams: streams.size }, 'could not keep the joined streams alive in the log; a quiet one may start a new history'))
      .finally(() => (keeping = false));
  }, options.keepAliveMs ?? Math.max(100, log.retention.maxAgeMs / 4));
  keepAlive.unref();

  const onLive = (stream: Stream, event: RealtimeEvent) => {
    if (stream.recovering) fanOut.holdForRecovery(stream.recovering, event);
    else fanOut.deliverLive(stream, event);
  };

  let joining = 0;
  const streamFor = (ref: StreamRef): Stream => {
    const existing = streams.get(ref.key);
    if (existing) return existing;
    const stream: Stream = {
      ref,
      cohorts: new Map(),
      subscribers: 0,
      joined: Promise.resolve(),
      leave: undefined,
      last: undefined,
      lastCursor: undefined,
      recovering: undefined,
    };
    joining += 1;
    stream.joined = (async () => {
      // The SUBSCRIBE first, at once: a publish that follows the subscription's answer must find it.
      const subscribing = bus.join(ref, (event) => onLive(stream, event));
      let leave: () => void;
      try {
        leave = await within(subscribing, joinTimeoutMs, `live channel not subscribed within ${joinTimeoutMs} ms`);
      } catch (error) {
        // Its subscribers are told to retry and the stream is dropped: a subscription that lands
        // later is nobody's, and is left at once.
        void subscribing.then((late) => late(), () => undefined);
        throw error;
      }
      try {
        // What recovery reads after if the bus is cut off before the first live event arrives. It
        // is no mark for dropping duplicates: no event reached this stream's subscribers yet, and
        // an event appended around the SUBSCRIBE must not be taken for one, whichever of its live
        // copy and this reply comes first. Only its epoch is kept (position 0 is before any event),
        // so a history replaced before the first live event still resyncs those holding a position.
        const head = await log.head(ref);
        if (stream.lastCursor === undefined) {
          stream.last = { epoch: decodeCursor(head).epoch, position: '0' };
          stream.lastCursor = head;
        }
        // Listened to from now: kept alive at once, not only at the next tick — a stream joined
        // with less of its life left than that would expire under its subscribers, and its next
        // event would resync those that resumed with a cursor.
        await log
          .keepAlive([ref])
          .catch((error: unknown) => logger.warn({ err: error, topic: ref.topic }, 'could not keep a joined stream alive in the log; the next tick tries again'));
      } catch (error) {
        // A join that fails holds no channel; one that succeeds is left by the last subscriber to go.
        leave();
        throw error;
      }
      stream.leave = leave;
    })();
    const joinSettled = () => (joining -= 1);
    void stream.joined.then(joinSettled, joinSettled);
    streams.set(ref.key, stream);
    return stream;
  };

  // A recovery belongs to one link generation: a link lost again makes it stop, and the next
  // `recovered` starts another.
  let linkGeneration = 0;
  let linkUp = true;
  const stopWatching = bus.watch({
    lost() {
      linkGeneration += 1;
      linkUp = false;
      for (const stream of streams.values()) {
        if (stream.recovering) continue;
        let resolve = () => undefined as void;
        const done = new Promise<void>((settle) => (resolve = settle));
        stream.recovering = { held: [], overflowed: false, historyLost: false, done, resolve };
      }
    },
    recovered() {
      linkUp = true;
      const generation = linkGeneration;
      const current = () => generation === linkGeneration && linkUp;
      for (const stream of streams.values()) {
        if (!stream.recovering) continue;
        catchUp.recover(stream, current).catch((error: unknown) => {
          const recovery = stream.recovering;
          stream.recovering = undefined;
          fanOut.failAll(stream, error);
          recovery?.resolve();
        });
      }
    },
  });

  return {
    async subscribe(request) {
      const position = request.after === undefined ? undefined : decodeCursor(request.after); // RESYNC_REQUIRED for garbage, before any work
      if (request.beforeNewStream && !streams.has(request.stream.key)) await request.beforeNewStream();
      const stream = streamFor(request.stream);
      let cohort = stream.cohorts.get(request.cohort.key);
      if (!cohort) {
        cohort = { spec: request.cohort, stream, live: new Set(), catchingUp: new Set() };
        stream.cohorts.set(request.cohort.key, cohort);
      }
      const subscriber: Subscriber = {
        sink: request.sink,
        admit: request.admit,
        cohort,
        // Held back from the start: events arriving while the join completes are kept for the seam.
        held: position === undefined ? undefined : [],
        overflowed: false,
        epoch: position?.epoch,
        caughtUpTo: undefined,
        closed: false,
      };
      // The initial message goes first, before anything the stream can deliver.
      if (request.initial) {
        const payload = fanOut.renderFor(cohort, request.initial);
        if (payload !== undefined) request.sink.next(payload);
      }
      fanOut.add(cohort, subscriber);

      try {
        await stream.joined;
      } catch (error) {
        if (streams.get(stream.ref.key) === stream) streams.delete(stream.ref.key);
        fanOut.removeSubscriber(subscriber);
        if (isTributaryError(error)) throw error;
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'Live delivery is unavailable right now; retry shortly', { cause: error });
      }
      if (request.after !== undefined) {
        catchUp.resume(subscriber, request.after).catch((error: unknown) => fanOut.failSubscriber(subscriber, error));
      }
      return { dispose: () => fanOut.removeSubscriber(subscriber) };
    },
    stats() {
      let cohorts = 0;
      for (const stream of streams.values()) cohorts += stream.cohorts.size;
      return { streams: streams.size, cohorts, subscribers: fanOut.subscriberCount(), joining };
    },
    async close() {
      clearInterval(keepAlive);
      stopWatching();
      closing.abort();
      for (const stream of [...streams.values()]) {
        for (const cohort of [...stream.cohorts.values()]) {
          for (const subscriber of [...cohort.live, ...cohort.catchingUp]) fanOut.removeSubscriber(subscriber);
        }
      }
      await Promise.resolve();
    },
  };
}
