import { ErrorCode, isTributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { comparePositions, decodeCursor, encodeCursor, resyncRequired } from '../log/cursor.ts';
import type { EventLog } from '../log/event-log.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { FanOut, Recovery, Stream, Subscriber } from './fan-out.ts';

/**
 * Reading the log to join the live flow without a gap or a duplicate at the seam, in the two
 * places it is needed:
 *
 * - Resume: a subscriber with `after` replays the log while live events for it are held back;
 *   when the log has nothing more, the held events newer than what the log gave are delivered
 *   and the subscriber turns live. Live copies of what the log gave may still be on their way
 *   (the bus is not the socket the log is read on): the fan-out drops them for it
 *   (`Subscriber.caughtUpTo`).
 * - Outage: from the moment the bus link is lost, live events are held per stream; once it is
 *   back, the stream reads the log after the last event it delivered, delivers that, then the
 *   held events (duplicates skipped by position). A link lost again meanwhile restarts the
 *   catch-up at the next recovery. If the log no longer has the stream's history, only the
 *   subscribers that hold a position in it resync; the others get the new history from its start.
 *
 * Both go at the pace of the sockets they write to (`SubscriberSink.drained`): the log can hand
 * over a backlog far faster than a socket sends it, and a socket holding more than its bound is
 * closed as a slow consumer. While a replay waits, live events are held as above. A stream's
 * catch-up serves all its live subscribers from one read of the log; one whose socket has not
 * drained within `stallMs` (a client that stopped reading, a dead peer the keepalive has not found
 * yet) goes on alone, as a resume from what it was given, so it holds up no one else.
 */
export interface CatchUp {
  /** Replays the log after `after` to a catching-up subscriber, then turns it live. */
  resume(subscriber: Subscriber, after: string): Promise<void>;
  /** Catches a recovering stream up from the log while `current()` holds, retrying failures. */
  recover(stream: Stream, current: () => boolean): Promise<void>;
}

export interface CatchUpOptions {
  readonly log: EventLog;
  readonly fanOut: FanOut;
  readonly logger: Logger;
  /** Events read from the log per request. */
  readonly pageSize: number;
  /** Aborted when the dispatcher closes: retries stop waiting. */
  readonly signal: AbortSignal;
  /** How long a stream's catch-up waits for a live subscriber's socket to drain before that one goes on alone, in ms. */
  readonly stallMs: number;
}

export function createCatchUp(options: CatchUpOptions): CatchUp {
  const { log, fanOut, logger, pageSize, signal, stallMs } = options;

  const resume = async (subscriber: Subscriber, after: string) => {
    const { cohort } = subscriber;
    let position = decodeCursor(after);
    let cursor = after;
    for (;;) {
      const page = await log.readAfter(cohort.stream.ref, cursor, pageSize);
      if (subscriber.closed) return;
      for (const event of page) {
        // A write can close it (its socket's buffer overflowing): it is gone from its cohort.
        if (subscriber.closed) return;
        const drained = subscriber.sink.drained();
        if (drained) {
          await drained;
          if (subscriber.closed) return;
        }
        const payload = fanOut.inScope(cohort.stream.ref, event) ? fanOut.renderFor(cohort, event) : undefined;
        if (payload !== undefined) fanOut.replayTo(subscriber, position.epoch, event, payload);
        cursor = event.cursor;
      }
      if (subscriber.closed) return;
      if (page.length > 0) position = decodeCursor(cursor);
      if (page.length === pageSize) continue;
      // The log has nothing after `position`; every later event is among the held ones. They are
      // taken one at a time: while the socket makes the replay wait, more arrive behind them.
      for (;;) {
        if (subscriber.overflowed) break;
        const event = subscriber.held?.shift();
        if (event === undefined) break;
        const placed = decodeCursor(event.cursor);
        if (placed.epoch !== position.epoch) throw resyncRequired('the stream has a new history');
        if (comparePositions(placed.position, position.position) <= 0) continue;
        if (subscriber.closed) return;
        const drained = subscriber.sink.drained();
        if (drained) {
          await drained;
          if (subscriber.closed) return;
          // More arrived while it waited than may be held: the log has them, `event` with them.
          if (subscriber.overflowed) break;
        }
        const payload = fanOut.renderFor(cohort, event);
        if (payload !== undefined) fanOut.replayTo(subscriber, placed.epoch, event, payload);
        position = placed;
        cursor = event.cursor;
      }
      if (subscriber.closed) return;
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
      // Nothing held, nothing more in the log, and no await since: live from here.
      subscriber.held = undefined;
      subscriber.caughtUpTo = position;
      cohort.catchingUp.delete(subscriber);
      cohort.live.add(subscriber);
      return;
    }
  };

  /**
   * Waits until the stream's live subscribers' sockets may be written to again; those that have
   * not drained within `stallMs` go on alone: caught up from the log after the last event handed
   * to them, at their own pace (`resume`), while the stream's catch-up carries on without them.
   */
  const paceTo = async (stream: Stream): Promise<void> => {
    const lagging = laggingOf(stream);
    if (lagging.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), stallMs)));
    const drained = Promise.all(lagging.map(([, drain]) => drain)).then(() => false);
    try {
      if (!(await Promise.race([drained, stalled]))) return;
    } finally {
      clearTimeout(timer);
    }
    for (const [subscriber] of lagging) {
      if (subscriber.closed || !subscriber.cohort.live.has(subscriber) || !subscriber.sink.drained()) continue;
      goOnAlone(stream, subscriber);
    }
  };

  const goOnAlone = (stream: Stream, subscriber: Subscriber) => {
    const given = stream.last;
    if (given === undefined || stream.lastCursor === undefined) return;
    // A subscriber that caught up by itself may have been given more than the stream: after that.
    const reached = subscriber.caughtUpTo;
    const after =
      reached && reached.epoch === given.epoch && comparePositions(reached.position, given.position) > 0
        ? encodeCursor(reached.epoch, reached.position)
        : stream.lastCursor;
    subscriber.cohort.live.delete(subscriber);
    subscriber.cohort.catchingUp.add(subscriber);
    subscriber.held = [];
    subscriber.overflowed = false;
    subscriber.caughtUpTo = undefined;
    logger.debug({ topic: stream.ref.topic, stallMs }, 'a socket did not drain during a catch-up; it catches up alone');
    resume(subscriber, after).catch((error: unknown) => fanOut.failSubscriber(subscriber, error));
  };

  /**
   * Delivers what the log holds after the stream's last delivered event, at the pace of its live
   * subscribers' sockets (`paceTo`); stops when `current()` no longer holds.
   */
  const replayAfterLast = async (stream: Stream, current: () => boolean) => {
    for (;;) {
      const cursor = stream.lastCursor;
      if (cursor === undefined) return;
      const page = await log.readAfter(stream.ref, cursor, pageSize);
      for (const event of page) {
        await paceTo(stream);
        if (!current()) return;
        fanOut.deliverLive(stream, event);
      }
      if (page.length < pageSize) return;
    }
  };

  /**
   * Delivers the events held during the outage in turn, at the same pace as the replay; more
   * arrive behind them while it waits. Returns when none is left, or when it must stop or read
   * the log again (`recovery.overflowed`: the one taken is in the log with them).
   */
  const deliverHeld = async (stream: Stream, recovery: Recovery, current: () => boolean) => {
    for (;;) {
      if (recovery.overflowed) return;
      const event = recovery.held.shift();
      if (event === undefined) return;
      await paceTo(stream);
      if (!current() || recovery.overflowed) return;
      fanOut.deliverLive(stream, event);
    }
  };

  const finish = (stream: Stream, recovery: Recovery) => {
    stream.recovering = undefined;
    for (const event of recovery.held) fanOut.deliverLive(stream, event);
    recovery.resolve();
  };

  /**
   * Points the stream at the start of the history that replaced the lost one: the subscribers
   * still there hold no position, so they get that history from its start rather than a gap.
   */
  const startNewHistory = async (stream: Stream) => {
    const { epoch } = decodeCursor(await log.head(stream.ref));
    // Every log's positions in a history order after `0` (cursor.ts: `<n>` or `<ms>-<seq>`).
    stream.last = { epoch, position: '0' };
    stream.lastCursor = encodeCursor(epoch, '0');
  };

  const recover = async (stream: Stream, current: () => boolean) => {
    const backoff = createBackoff({ initialMs: 50, maxMs: 2000 });
    for (;;) {
      const recovery = stream.recovering;
      if (!recovery || !current() || fanOut.streams.get(stream.ref.key) !== stream) return;
      try {
        if (recovery.historyLost && stream.lastCursor === undefined) await startNewHistory(stream);
        const replaying = () => current() && stream.recovering === recovery && fanOut.streams.get(stream.ref.key) === stream && !signal.aborted;
        await replayAfterLast(stream, replaying);
        if (replaying() && !recovery.overflowed) await deliverHeld(stream, recovery, replaying);
        if (!replaying()) return;
        if (recovery.overflowed) {
          recovery.overflowed = false;
          continue;
        }
        // Hands on what arrived since the held list was found empty (no socket wait between).
        finish(stream, recovery);
        return;
      } catch (error) {
        if (!(isTributaryError(error) && error.code === ErrorCode.RESYNC_REQUIRED)) {
          logger.debug({ err: error, topic: stream.ref.topic, attempt: backoff.failures }, 'catch-up after outage failed; retrying');
          if (!(await pause(backoff.next(), signal))) return;
          continue;
        }
        if (stream.recovering !== recovery) return;
        // The log no longer has the history the stream was delivering (Redis lost its data, the
        // stream expired during the outage): whoever holds a position in it resyncs. The others
        // continue with the new history — unless that one is unreadable too, which no one may
        // miss silently.
        fanOut.failHolders(stream, undefined, recovery.historyLost);
        if (recovery.historyLost) {
          finish(stream, recovery);
          return;
        }
        recovery.historyLost = true;
        stream.last = undefined;
        stream.lastCursor = undefined;
      }
    }
  };

  return { resume, recover };
}

/** The stream's live subscribers whose sinks must pass on what they hold before a replay writes more, with what they wait for. */
function laggingOf(stream: Stream): [Subscriber, Promise<void>][] {
  const lagging: [Subscriber, Promise<void>][] = [];
  for (const cohort of stream.cohorts.values()) {
    for (const subscriber of cohort.live) {
      const drained = subscriber.sink.drained();
      if (drained) lagging.push([subscriber, drained]);
    }
  }
  return lagging;
}
