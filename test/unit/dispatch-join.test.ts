/**
 * Joining a stream: the dispatcher reads the log's head and SUBSCRIBEs on the bus. The real
 * in-memory log and bus, wrapped where a test needs a failure or a race between the two
 * (with Redis they are different sockets, so their replies can come in either order).
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { createDispatcher, type Dispatcher } from '../../src/pipeline/dispatch/dispatcher.ts';
import type { CohortSpec, SubscriberSink } from '../../src/pipeline/dispatch/subscription-contract.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import type { EventBus } from '../../src/pipeline/pubsub/event-bus.ts';
import { createMemoryBus } from '../../src/pipeline/pubsub/memory-bus.ts';
import { streamOf, type StreamRef } from '../../src/pipeline/stream.ts';
import { waitFor } from '../helpers/wait-for.ts';

const STREAM = streamOf({ app: 'shop', env: 'prod', tenant: 't1' }, 'orders');
const COHORT: CohortSpec = { key: 'seq', filter: undefined, render: (event) => String(event.payload['seq']) };

const running: Dispatcher[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const dispatcher of running.splice(0)) await dispatcher.close();
});

function receiver() {
  const seqs: number[] = [];
  const sink: SubscriberSink = { next: (payload) => seqs.push(Number(payload.json)), fail: () => undefined, drained: () => undefined };
  return { seqs, sink };
}

/**
 * The memory log and bus; `delay()` keeps what is published in flight until `release()`, as
 * Redis pub/sub can be behind a command's reply. `joins` counts the bus subscriptions held, and
 * `heard` the events their listeners were handed.
 */
function setUp() {
  const memoryBus = createMemoryBus();
  let inFlight: [StreamRef, RealtimeEvent][] | undefined;
  const log = createMemoryLog({
    retention: { maxEvents: 100, maxAgeMs: 3_600_000 },
    publish: (stream, event) => (inFlight ? inFlight.push([stream, event]) : memoryBus.deliver(stream, event)),
  });
  const counts = { joins: 0, heard: 0 };
  let afterJoin: (() => Promise<unknown>) | undefined;
  const bus: EventBus = {
    async join(stream, listener) {
      const leave = await memoryBus.join(stream, (event) => {
        counts.heard += 1;
        listener(event);
      });
      counts.joins += 1;
      // The SUBSCRIBE is confirmed: whatever runs here comes before the dispatcher goes on.
      await afterJoin?.();
      return () => {
        counts.joins -= 1;
        leave();
      };
    },
    watch: () => () => undefined,
  };
  let seq = 0;
  const publish = () => {
    seq += 1;
    return log.append(STREAM, { id: `evt_${seq}`, topic: STREAM.topic, source: 'socket', type: 'message', payload: { seq }, metadata: { timestamp: Date.now(), scope: STREAM.scope } });
  };
  return {
    log,
    bus,
    counts,
    publish,
    onJoined: (run: () => Promise<unknown>) => (afterJoin = run),
    delay: () => (inFlight ??= []),
    release: () => {
      const arriving = inFlight ?? [];
      inFlight = undefined;
      for (const [stream, event] of arriving) memoryBus.deliver(stream, event);
    },
  };
}

function start(log: EventLog, bus: EventBus): Dispatcher {
  const dispatcher = createDispatcher({ log, bus, logger: pino({ level: 'silent' }) });
  running.push(dispatcher);
  return dispatcher;
}

describe('dispatcher: joining a stream', () => {
  it('counts a stream as joining until its SUBSCRIBE is confirmed and its head read', async () => {
    const { log, bus, onJoined } = setUp();
    let confirm!: () => void;
    onJoined(() => new Promise<void>((resolve) => (confirm = resolve)));
    const dispatcher = start(log, bus);
    const subscribed = dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: receiver().sink });
    await waitFor(() => confirm !== undefined, { message: 'the SUBSCRIBE was sent' });
    expect(dispatcher.stats()).toMatchObject({ subscribers: 1, joining: 1 });
    confirm();
    await subscribed;
    expect(dispatcher.stats()).toMatchObject({ subscribers: 1, joining: 0 });
  });

  it('holds no bus subscription for a join that failed reading the log, however often a client retries', async () => {
    const { log, bus, counts, publish } = setUp();
    let failures = 3;
    // The command connection failing (Redis OOM, say) while the SUBSCRIBE connection is fine.
    const failing: EventLog = {
      ...log,
      head(stream) {
        if (failures === 0) return log.head(stream);
        failures -= 1;
        return Promise.reject(new TributaryError(ErrorCode.UNAVAILABLE, 'The event log is unavailable right now; retry shortly'));
      },
    };
    const dispatcher = start(failing, bus);
    const received = receiver();
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await expect(dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: received.sink })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    }
    expect(counts.joins).toBe(0);
    expect(dispatcher.stats()).toEqual({ streams: 0, cohorts: 0, subscribers: 0, joining: 0 });

    const handle = await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: received.sink });
    await publish();
    expect(received.seqs).toEqual([1]);
    expect(counts.heard).toBe(1); // one listener on the channel, not one per attempt
    handle.dispose();
    await waitFor(() => counts.joins === 0, { message: 'the last subscriber left the channel' });
  });

  it.each(['after', 'before'] as const)(
    'delivers to a new stream an event appended right after its SUBSCRIBE was confirmed, its live copy arriving %s the rest of the join',
    async (copy) => {
      const { log, bus, publish, onJoined, delay, release } = setUp();
      onJoined(async () => {
        if (copy === 'after') delay();
        await publish(); // 1
      });
      const dispatcher = start(log, bus);
      const received = receiver();
      await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: received.sink });
      release();
      await publish(); // 2
      expect(received.seqs).toEqual([1, 2]);
    },
  );

  it('fails the subscribers of a join whose SUBSCRIBE has not been confirmed within joinTimeoutMs (5 s by default) with UNAVAILABLE, and leaves the channel when it is confirmed late', async () => {
    vi.useFakeTimers();
    const { log, bus, counts, publish } = setUp();
    // The subscriber connection alone is down: its SUBSCRIBEs wait in its queue until it is back.
    const stalled: (() => void)[] = [];
    const stalling: EventBus = {
      ...bus,
      join: (stream, listener) =>
        new Promise<() => void>((resolve, reject) => stalled.push(() => void bus.join(stream, listener).then(resolve, reject))),
    };
    const dispatcher = start(log, stalling);
    const first = receiver();
    const second = receiver();
    const outcomes = [first, second].map((received) =>
      dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: received.sink }).then(
        () => 'joined',
        (error: unknown) => error,
      ),
    );
    await vi.advanceTimersByTimeAsync(4_999);
    expect(dispatcher.stats().subscribers).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    for (const outcome of await Promise.all(outcomes)) {
      expect(outcome).toBeInstanceOf(TributaryError);
      expect(outcome).toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/retry shortly/) as unknown });
    }
    expect(dispatcher.stats()).toEqual({ streams: 0, cohorts: 0, subscribers: 0, joining: 0 });

    // The connection is back: the late SUBSCRIBE is left, and a retry joins afresh.
    vi.useRealTimers();
    const retry = dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: first.sink });
    expect(stalled).toHaveLength(2);
    for (const confirm of stalled) confirm();
    const handle = await retry;
    await waitFor(() => counts.joins === 1, { message: 'the late subscription was left' });
    await publish();
    expect(first.seqs).toEqual([1]);
    expect(counts.heard).toBe(1);
    handle.dispose();
  });
});
