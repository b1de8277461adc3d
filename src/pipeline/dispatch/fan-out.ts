import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { AnalyticsRecorder } from '../analytics/recorder.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { comparePositions, decodeCursor, resyncRequired, type CursorParts } from '../log/cursor.ts';
import type { StreamRef } from '../stream.ts';
import { createScopeGuard, type ScopeGuard } from './scope-guard.ts';
import type { Admission, CohortSpec, Rendered, SubscriberSink } from './subscription-contract.ts';

/**
 * Cohort management: the streams this process serves, their cohorts and subscribers, and the
 * hot path that hands a live event to them — filtered and rendered once per cohort, the same
 * JSON to each member's sink. A subscriber is a set entry, not an async iterator.
 */

export interface Subscriber {
  readonly sink: SubscriberSink;
  readonly admit: Admission | undefined;
  readonly cohort: Cohort;
  /** Live events that arrived while catching up; `undefined` once live. */
  held: RealtimeEvent[] | undefined;
  /** More live events arrived while catching up than could be held: read the log again. */
  overflowed: boolean;
  /**
   * The epoch of the position this subscriber holds — its `after`, or the last event handed to
   * it — and undefined while it holds none. When a stream's history is replaced, only the
   * subscribers holding a position in the old one must resync: a subscriber without one has
   * missed nothing it was promised.
   */
  epoch: string | undefined;
  /**
   * Where this subscriber's catch-up left the log, until a live event after it arrives. The log
   * can return an event whose live copy is still on its way (Redis pub/sub is another socket than
   * the log's reads) and, the stream not having delivered it yet, `Stream.last` does not drop it.
   */
  caughtUpTo: CursorParts | undefined;
  closed: boolean;
}

export interface Cohort {
  readonly spec: CohortSpec;
  readonly stream: Stream;
  readonly live: Set<Subscriber>;
  readonly catchingUp: Set<Subscriber>;
}

export interface Stream {
  readonly ref: StreamRef;
  readonly cohorts: Map<string, Cohort>;
  subscribers: number;
  /** Resolves once this process receives the stream's live events. */
  joined: Promise<void>;
  leave: (() => void) | undefined;
  /**
   * Position of the newest event handed to live subscribers: for de-duplication and recovery.
   * Until the first one, position 0 of the epoch the stream was joined in (nothing is dropped).
   */
  last: CursorParts | undefined;
  /** Where recovery reads the log after: the newest event handed to live subscribers, or the head at the join. */
  lastCursor: string | undefined;
  /** Set while the bus link is down or being caught up: live events are held, not delivered. */
  recovering: Recovery | undefined;
}

/** A stream's state between losing the bus link and having caught up from the log. */
export interface Recovery {
  /** Live events received since the link was lost, delivered after the log's. */
  held: RealtimeEvent[];
  /** More live events arrived than could be held: the log is read again for them. */
  overflowed: boolean;
  /** The log lost the history the stream was delivering; the stream continues in the new one. */
  historyLost: boolean;
  /** Resolves when the stream delivers live again; catch-ups wait for it before turning live. */
  readonly done: Promise<void>;
  readonly resolve: () => void;
}

export interface FanOutOptions {
  readonly logger: Logger;
  /** Live events held per catching-up subscriber or recovering stream. */
  readonly holdBackLimit: number;
  readonly metrics: Pick<Metrics, 'holdBackOverflows' | 'eventsOutOfScope'> | undefined;
  /** Counts deliveries, bytes, publish → socket latency and resyncs per topic. */
  readonly analytics: Pick<AnalyticsRecorder, 'delivered' | 'resync'> | undefined;
}

export interface FanOut {
  readonly streams: Map<string, Stream>;
  readonly subscriberCount: () => number;
  /** Adds a subscriber, live or catching up (events are then held for it). */
  add(cohort: Cohort, subscriber: Subscriber): void;
  /**
   * Hands a live event to the stream's subscribers; duplicates of delivered events are dropped,
   * and so is an event whose scope is not the stream's (`inScope`).
   */
  deliverLive(stream: Stream, event: RealtimeEvent): void;
  /** Whether an event may reach the stream's subscribers (its scope is the stream's); logs and counts one that may not. */
  readonly inScope: ScopeGuard;
  /** Holds a live event on a recovering stream (counted and dropped for a re-read on overflow). */
  holdForRecovery(recovery: Recovery, event: RealtimeEvent): void;
  /** Delivers a (logged) event to one subscriber in `epoch`, subject to its admission; true when handed to its sink. */
  deliverTo(subscriber: Subscriber, epoch: string, event: RealtimeEvent, payload: Rendered): boolean;
  /** `deliverTo` for an event read from the log for one resuming subscriber: counted as a delivery without latency. */
  replayTo(subscriber: Subscriber, epoch: string, event: RealtimeEvent, payload: Rendered): void;
  /** Filters and renders an event for a cohort; undefined when it does not match or fails. */
  renderFor(cohort: Cohort, event: RealtimeEvent): Rendered | undefined;
  /**
   * The stream's history was replaced: ends with RESYNC_REQUIRED the subscribers holding a
   * position outside `survivingEpoch` (all that hold one when it is undefined), or every
   * subscriber when `everyone` (what they missed cannot be delivered).
   */
  failHolders(stream: Stream, survivingEpoch: string | undefined, everyone?: boolean): void;
  /** Ends every subscriber of the stream with this error. */
  failAll(stream: Stream, error: unknown): void;
  failSubscriber(subscriber: Subscriber, error: unknown): void;
  removeSubscriber(subscriber: Subscriber): void;
}

export function createFanOut(options: FanOutOptions): FanOut {
  const { logger, holdBackLimit, metrics, analytics } = options;
  const streams = new Map<string, Stream>();
  const inScope = createScopeGuard({ logger, metrics });
  let subscriberCount = 0;

  const renderFor = (cohort: Cohort, event: RealtimeEvent): Rendered | undefined => {
    try {
      if (cohort.spec.filter && !cohort.spec.filter(event)) return undefined;
      return { json: cohort.spec.render(event) };
    } catch (error) {
      // A failing filter or render drops this event for this cohort; it never kills the stream.
      logger.error({ err: error, topic: event.topic, eventId: event.id }, 'event could not be rendered; dropped for one cohort');
      return undefined;
    }
  };

  const deliverTo = (subscriber: Subscriber, epoch: string, event: RealtimeEvent, payload: Rendered): boolean => {
    if (subscriber.closed) return false;
    const admission = subscriber.admit ? subscriber.admit(event) : 'deliver';
    if (admission === 'deliver') {
      subscriber.epoch ??= epoch;
      subscriber.sink.next(payload);
      return true;
    }
    if (admission === 'resync') failSubscriber(subscriber, resyncRequired('a change is missing from the stream'));
    return false;
  };

  const hold = (subscriber: Subscriber, event: RealtimeEvent) => {
    if (!subscriber.held || subscriber.overflowed) return;
    if (subscriber.held.length >= holdBackLimit) {
      subscriber.overflowed = true;
      subscriber.held = [];
      metrics?.holdBackOverflows.inc({ phase: 'resume' });
      return;
    }
    subscriber.held.push(event);
  };

  /** True for the live copy of an event the subscriber's catch-up gave it; forgets the mark past it. */
  const caughtUpPast = (subscriber: Subscriber, placed: CursorParts): boolean => {
    const reached = subscriber.caughtUpTo;
    if (reached && reached.epoch === placed.epoch && comparePositions(placed.position, reached.position) <= 0) return true;
    subscriber.caughtUpTo = undefined;
    return false;
  };

  const removeSubscriber = (subscriber: Subscriber) => {
    if (subscriber.closed) return;
    subscriber.closed = true;
    subscriberCount -= 1;
    const { cohort } = subscriber;
    cohort.live.delete(subscriber);
    cohort.catchingUp.delete(subscriber);
    if (cohort.live.size === 0 && cohort.catchingUp.size === 0) cohort.stream.cohorts.delete(cohort.spec.key);
    const stream = cohort.stream;
    stream.subscribers -= 1;
    if (stream.subscribers === 0) {
      if (streams.get(stream.ref.key) === stream) streams.delete(stream.ref.key);
      // Leave once the join has settled; a join that failed left its channel itself (dispatcher.ts).
      void stream.joined.then(
        () => stream.leave?.(),
        () => undefined,
      );
    }
  };

  const failSubscriber = (subscriber: Subscriber, error: unknown) => {
    if (subscriber.closed) return;
    removeSubscriber(subscriber);
    if (analytics && isTributaryError(error) && error.code === ErrorCode.RESYNC_REQUIRED) analytics.resync(subscriber.cohort.stream.ref.key);
    subscriber.sink.fail(
      isTributaryError(error)
        ? error
        : new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, 'The event stream failed', { cause: error }),
    );
  };

  const subscribersOf = (stream: Stream): Subscriber[] =>
    [...stream.cohorts.values()].flatMap((cohort) => [...cohort.live, ...cohort.catchingUp]);

  const failHolders = (stream: Stream, survivingEpoch: string | undefined, everyone = false) => {
    const failing = subscribersOf(stream).filter(
      (subscriber) => everyone || (subscriber.epoch !== undefined && subscriber.epoch !== survivingEpoch),
    );
    if (failing.length === 0) return;
    // What is missing between two histories cannot be known: a subscriber that holds a position
    // in the old one resyncs rather than skip it silently.
    logger.warn({ topic: stream.ref.topic, subscribers: failing.length }, 'stream has a new history; subscribers holding a position in the old one must resync');
    const error = resyncRequired('the stream has a new history');
    for (const subscriber of failing) failSubscriber(subscriber, error);
  };

  return {
    streams,
    subscriberCount: () => subscriberCount,
    add(cohort, subscriber) {
      cohort.stream.subscribers += 1;
      subscriberCount += 1;
      if (subscriber.held === undefined) cohort.live.add(subscriber);
      else cohort.catchingUp.add(subscriber);
    },
    deliverLive(stream, event) {
      const placed = decodeCursor(event.cursor);
      const last = stream.last;
      // Recovery re-reads what live delivery may already have handed over.
      if (last && last.epoch === placed.epoch && comparePositions(placed.position, last.position) <= 0) return;
      stream.last = placed;
      stream.lastCursor = event.cursor;
      if (last && last.epoch !== placed.epoch) failHolders(stream, placed.epoch);
      // Its position is passed (a catch-up reads on after it); its content goes to no one.
      if (!inScope(stream.ref, event)) return;
      for (const cohort of stream.cohorts.values()) {
        for (const subscriber of cohort.catchingUp) hold(subscriber, event);
        if (cohort.live.size === 0) continue;
        const payload = renderFor(cohort, event);
        if (payload === undefined) continue;
        let delivered = 0;
        for (const subscriber of cohort.live) {
          if (subscriber.caughtUpTo && caughtUpPast(subscriber, placed)) continue;
          if (deliverTo(subscriber, placed.epoch, event, payload)) delivered += 1;
        }
        // One count per cohort, after its frames are written (the sinks write synchronously).
        if (analytics && delivered > 0) {
          analytics.delivered(stream.ref.key, delivered, payload.utf8?.length ?? payload.json.length, Date.now() - event.metadata.timestamp);
        }
      }
    },
    holdForRecovery(recovery, event) {
      if (recovery.overflowed) return;
      if (recovery.held.length < holdBackLimit) {
        recovery.held.push(event);
        return;
      }
      recovery.overflowed = true;
      recovery.held = [];
      metrics?.holdBackOverflows.inc({ phase: 'outage' });
    },
    inScope,
    deliverTo,
    replayTo(subscriber, epoch, event, payload) {
      if (deliverTo(subscriber, epoch, event, payload)) analytics?.delivered(subscriber.cohort.stream.ref.key, 1, payload.utf8?.length ?? payload.json.length, undefined);
    },
    renderFor,
    failHolders,
    failAll(stream, error) {
      logger.warn({ err: error, topic: stream.ref.topic }, 'stream cannot be continued; subscribers must resync');
      for (const subscriber of subscribersOf(stream)) failSubscriber(subscriber, error);
    },
    failSubscriber,
    removeSubscriber,
  };
}
