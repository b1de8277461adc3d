import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { RealtimeEvent } from '../envelope.ts';
import { comparePositions, decodeCursor, resyncRequired, type CursorParts } from '../log/cursor.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventBus } from '../pubsub/event-bus.ts';
import type { StreamRef } from '../stream.ts';
import type { EventPredicate } from '../filters/event-filter.ts';

/**
 * Topic → cohorts → subscribers (ARCHITECTURE §1).
 *
 * A cohort is the subscribers of one stream that share an operation, its variables and return
 * mode: for each event the cohort filters once, renders (executes and serializes) once, and
 * hands the same JSON to each subscriber's sink. A filter that does not match costs no
 * rendering; a subscriber is a set entry, not an async iterator.
 *
 * Resume: a subscriber with `after` catches up from the log while live events for it are held
 * back; when the log has nothing more, the held events newer than what the log gave are
 * delivered and the subscriber turns live — no gap and no duplicate at the seam.
 */
export interface Dispatcher {
  subscribe(request: DispatchRequest): Promise<DispatchSubscription>;
  stats(): DispatcherStats;
  close(): Promise<void>;
}

/** An event rendered for a cohort: one per event per cohort, handed to every member's sink. */
export interface Rendered {
  /** The `next` payload (an execution result) as JSON. */
  readonly json: string;
  /** The transport's encoding of `json`, made by the first sink that needs it and shared. */
  utf8?: Buffer;
}

/** Where a subscriber's messages go; implemented by the transport. */
export interface SubscriberSink {
  /** One `next` message with this payload. */
  next(payload: Rendered): void;
  /** Ends the subscription with an error; the dispatcher has already forgotten the subscriber. */
  fail(error: TributaryError): void;
}

export interface CohortSpec {
  /** Subscribers of one stream with equal keys share filtering and rendering. */
  readonly key: string;
  readonly filter: EventPredicate | undefined;
  /** The `next` payload for an event, as JSON. Called once per event per cohort. */
  readonly render: (event: RealtimeEvent) => string;
}

export interface DispatchRequest {
  readonly stream: StreamRef;
  readonly cohort: CohortSpec;
  /** Resume after this cursor; live from now when absent. */
  readonly after: string | undefined;
  readonly sink: SubscriberSink;
  /** Rendered and delivered before anything from the stream (a snapshot). */
  readonly initial?: RealtimeEvent | undefined;
  /**
   * A per-subscriber check of each event, after the cohort rendered it once: deliver it, skip it
   * (a snapshot already holds it) or end the subscription with RESYNC_REQUIRED (it reveals a gap).
   */
  readonly admit?: Admission | undefined;
}

export type Admission = (event: RealtimeEvent) => 'deliver' | 'skip' | 'resync';

export interface DispatchSubscription {
  /** Stops delivery; idempotent. */
  dispose(): void;
}

export interface DispatcherStats {
  readonly streams: number;
  readonly cohorts: number;
  readonly subscribers: number;
}

export interface DispatcherOptions {
  readonly log: EventLog;
  readonly bus: EventBus;
  readonly logger: Logger;
  /** Events read from the log per request while catching up. @default 500 */
  readonly pageSize?: number;
  /** Live events held back per catching-up subscriber before it re-reads the log instead. @default 1000 */
  readonly holdBackLimit?: number;
}

interface Subscriber {
  readonly sink: SubscriberSink;
  readonly admit: Admission | undefined;
  readonly cohort: Cohort;
  /** Live events that arrived while catching up; `undefined` once live. */
  held: RealtimeEvent[] | undefined;
  /** More live events arrived while catching up than could be held: read the log again. */
  overflowed: boolean;
  closed: boolean;
}

interface Cohort {
  readonly spec: CohortSpec;
  readonly stream: Stream;
  readonly live: Set<Subscriber>;
  readonly catchingUp: Set<Subscriber>;
}

interface Stream {
  readonly ref: StreamRef;
  readonly cohorts: Map<string, Cohort>;
  subscribers: number;
  /** Resolves once this process receives the stream's live events. */
  joined: Promise<void>;
  leave: (() => void) | undefined;
  /** Position of the newest event handed to live subscribers: for de-duplication and recovery. */
  last: CursorParts | undefined;
  lastCursor: string | undefined;
  /** Set while the bus link is down or being caught up: live events are held, not delivered. */
  recovering: Recovery | undefined;
}

/** A stream's state between losing the bus link and having caught up from the log. */
interface Recovery {
  /** Live events received since the link came back, delivered after the log's. */
  held: RealtimeEvent[];
  /** More live events arrived than could be held: the log is read again for them. */
  overflowed: boolean;
  /** Resolves when the stream delivers live again; catch-ups wait for it before turning live. */
  readonly done: Promise<void>;
  readonly resolve: () => void;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { log, bus } = options;
  const logger = options.logger.child({ component: 'dispatcher' });
  const pageSize = options.pageSize ?? 500;
  const holdBackLimit = options.holdBackLimit ?? 1000;
  const streams = new Map<string, Stream>();
  let subscriberCount = 0;

  const onLive = (stream: Stream, event: RealtimeEvent) => {
    const recovery = stream.recovering;
    if (!recovery) {
      deliverLive(stream, event);
    } else if (!recovery.overflowed) {
      if (recovery.held.length < holdBackLimit) recovery.held.push(event);
      else {
        recovery.overflowed = true;
        recovery.held = [];
      }
    }
  };

  /** Hands an event to the stream's live subscribers (and holds it for those catching up). */
  const deliverLive = (stream: Stream, event: RealtimeEvent) => {
    const placed = decodeCursor(event.cursor);
    const last = stream.last;
    // Recovery re-reads what live delivery may already have handed over.
    if (last && last.epoch === placed.epoch && comparePositions(placed.position, last.position) <= 0) return;
    stream.last = placed;
    stream.lastCursor = event.cursor;
    if (last && last.epoch !== placed.epoch) {
      // A new history (a recreated replication slot, a Redis that lost its data): what is missing
      // between the two cannot be known, so every subscriber resyncs rather than skip it silently.
      failStream(stream, resyncRequired('the stream has a new history'));
      return;
    }
    for (const cohort of stream.cohorts.values()) {
      for (const subscriber of cohort.catchingUp) hold(subscriber, event);
      if (cohort.live.size === 0) continue;
      const payload = renderFor(cohort, event);
      if (payload === undefined) continue;
      for (const subscriber of cohort.live) deliverTo(subscriber, event, payload);
    }
  };

  const deliverTo = (subscriber: Subscriber, event: RealtimeEvent, payload: Rendered) => {
    if (subscriber.closed) return;
    const admission = subscriber.admit ? subscriber.admit(event) : 'deliver';
    if (admission === 'deliver') subscriber.sink.next(payload);
    else if (admission === 'resync') failSubscriber(subscriber, resyncRequired('a change is missing from the stream'));
  };

  /** Filters and renders an event for a cohort; undefined when it does not match or fails. */
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

  const hold = (subscriber: Subscriber, event: RealtimeEvent) => {
    if (!subscriber.held || subscriber.overflowed) return;
    if (subscriber.held.length >= holdBackLimit) {
      subscriber.overflowed = true;
      subscriber.held = [];
      return;
    }
    subscriber.held.push(event);
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
      streams.delete(stream.ref.key);
      // Leave once the join has settled, whichever way it went.
      void stream.joined.then(
        () => stream.leave?.(),
        () => undefined,
      );
    }
  };

  const failSubscriber = (subscriber: Subscriber, error: unknown) => {
    if (subscriber.closed) return;
    removeSubscriber(subscriber);
    subscriber.sink.fail(
      isTributaryError(error)
        ? error
        : new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, 'The event stream failed', { cause: error }),
    );
  };

  /** Replays the log after `after`, then merges the held live events and turns live. */
  const catchUp = async (subscriber: Subscriber, after: string) => {
    const { cohort } = subscriber;
    let position = decodeCursor(after);
    let cursor = after;
    for (;;) {
      const page = await log.readAfter(cohort.stream.ref, cursor, pageSize);
      if (subscriber.closed) return;
      for (const event of page) {
        const payload = renderFor(cohort, event);
        if (payload !== undefined) deliverTo(subscriber, event, payload);
        cursor = event.cursor;
      }
      if (page.length > 0) position = decodeCursor(cursor);
      if (page.length === pageSize) continue;
      if (subscriber.overflowed) {
        subscriber.overflowed = false;
        continue;
      }
      // While the stream's bus link is down, live events reach no one's held list: wait until
      // the stream has caught up (it then hands its held events on), and read the log again.
      const recovery = cohort.stream.recovering;
      if (recovery) {
        await recovery.done;
        if (subscriber.closed) return;
        continue;
      }
      // The log has nothing after `position`; every later event is among the held ones.
      for (const event of subscriber.held ?? []) {
        const placed = decodeCursor(event.cursor);
        if (placed.epoch !== position.epoch) throw resyncRequired('the stream has a new history');
        if (comparePositions(placed.position, position.position) <= 0) continue;
        const payload = renderFor(cohort, event);
        if (payload !== undefined) deliverTo(subscriber, event, payload);
        position = placed;
      }
      subscriber.held = undefined;
      cohort.catchingUp.delete(subscriber);
      cohort.live.add(subscriber);
      return;
    }
  };

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
    stream.joined = (async () => {
      stream.leave = await bus.join(ref, (event) => onLive(stream, event));
      // Where live delivery starts: what recovery reads after if the bus is cut off before
      // the first event arrives.
      const head = await log.head(ref);
      if (stream.lastCursor === undefined) {
        stream.last = decodeCursor(head);
        stream.lastCursor = head;
      }
    })();
    streams.set(ref.key, stream);
    return stream;
  };

  /*
   * Bus outages. From the moment the link is lost, live events are held per stream; once it is
   * back, each stream reads the log after the last event it delivered, delivers that, then the
   * held events (duplicates skipped by position). A link lost again while catching up restarts
   * the catch-up at the next recovery; only a lost history (RESYNC_REQUIRED) ends subscriptions.
   */
  let linkGeneration = 0;
  let linkUp = true;

  const recover = async (stream: Stream, generation: number) => {
    for (let attempt = 0; ; attempt += 1) {
      const recovery = stream.recovering;
      if (!recovery || generation !== linkGeneration || !linkUp || streams.get(stream.ref.key) !== stream) return;
      try {
        let cursor = stream.lastCursor;
        let page: readonly RealtimeEvent[] = [];
        do {
          if (cursor === undefined) break;
          page = await log.readAfter(stream.ref, cursor, pageSize);
          for (const event of page) deliverLive(stream, event);
          cursor = stream.lastCursor;
        } while (page.length === pageSize);
        if (generation !== linkGeneration || !linkUp || stream.recovering !== recovery) return;
        if (recovery.overflowed) {
          recovery.overflowed = false;
          continue;
        }
        stream.recovering = undefined;
        const epoch = stream.last?.epoch;
        for (const event of recovery.held) {
          if (epoch !== undefined && decodeCursor(event.cursor).epoch !== epoch) throw resyncRequired('the stream has a new history');
          deliverLive(stream, event);
        }
        recovery.resolve();
        return;
      } catch (error) {
        if (isTributaryError(error) && error.code === ErrorCode.RESYNC_REQUIRED) {
          stream.recovering = recovery;
          throw error;
        }
        logger.debug({ err: error, topic: stream.ref.topic, attempt }, 'catch-up after outage failed; retrying');
        await delay(Math.min(50 * 2 ** attempt, 2000));
      }
    }
  };

  const failStream = (stream: Stream, error: unknown) => {
    logger.warn({ err: error, topic: stream.ref.topic }, 'stream cannot be continued; subscribers must resync');
    const recovery = stream.recovering;
    stream.recovering = undefined;
    for (const cohort of [...stream.cohorts.values()]) {
      for (const subscriber of [...cohort.live, ...cohort.catchingUp]) failSubscriber(subscriber, error);
    }
    recovery?.resolve();
  };

  const stopWatching = bus.watch({
    lost() {
      linkGeneration += 1;
      linkUp = false;
      for (const stream of streams.values()) {
        if (stream.recovering) continue;
        let resolve = () => undefined as void;
        const done = new Promise<void>((settle) => (resolve = settle));
        stream.recovering = { held: [], overflowed: false, done, resolve };
      }
    },
    recovered() {
      linkUp = true;
      const generation = linkGeneration;
      for (const stream of streams.values()) {
        if (!stream.recovering) continue;
        recover(stream, generation).catch((error: unknown) => failStream(stream, error));
      }
    },
  });

  return {
    async subscribe(request) {
      if (request.after !== undefined) decodeCursor(request.after); // RESYNC_REQUIRED for garbage, before any work
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
        held: request.after === undefined ? undefined : [],
        overflowed: false,
        closed: false,
      };
      stream.subscribers += 1;
      subscriberCount += 1;
      // The initial message goes first, before anything the stream can deliver.
      if (request.initial) {
        const payload = renderFor(cohort, request.initial);
        if (payload !== undefined) request.sink.next(payload);
      }
      // Held back from the start: events arriving while the join completes are kept for the seam.
      if (request.after === undefined) cohort.live.add(subscriber);
      else cohort.catchingUp.add(subscriber);

      try {
        await stream.joined;
      } catch (error) {
        if (streams.get(stream.ref.key) === stream) streams.delete(stream.ref.key);
        removeSubscriber(subscriber);
        if (isTributaryError(error)) throw error;
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'Live delivery is unavailable right now; retry shortly', { cause: error });
      }
      if (request.after !== undefined) {
        catchUp(subscriber, request.after).catch((error: unknown) => failSubscriber(subscriber, error));
      }
      return { dispose: () => removeSubscriber(subscriber) };
    },
    stats() {
      let cohorts = 0;
      for (const stream of streams.values()) cohorts += stream.cohorts.size;
      return { streams: streams.size, cohorts, subscribers: subscriberCount };
    },
    async close() {
      stopWatching();
      for (const stream of [...streams.values()]) {
        for (const cohort of [...stream.cohorts.values()]) {
          for (const subscriber of [...cohort.live, ...cohort.catchingUp]) removeSubscriber(subscriber);
        }
      }
      await Promise.resolve();
    },
  };
}
