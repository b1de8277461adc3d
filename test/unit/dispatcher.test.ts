/**
 * The dispatcher's seams, as a unit: the real in-memory log, and an in-memory bus whose link the
 * test cuts and restores (the bus is at-most-once: what it carries while cut is lost, as with
 * Redis pub/sub). Reads of the log can be held at a gate to interleave live events with a
 * catch-up exactly where the seam is.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ErrorCode, type TributaryError } from '../../src/errors.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { createDispatcher, type Dispatcher, type DispatcherOptions } from '../../src/pipeline/dispatch/dispatcher.ts';
import type { CohortSpec, SubscriberSink } from '../../src/pipeline/dispatch/subscription-contract.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import type { BusLinkListener, EventBus, EventListener } from '../../src/pipeline/pubsub/event-bus.ts';
import { streamOf, type StreamRef } from '../../src/pipeline/stream.ts';
import { deferred, waitFor, type Deferred } from '../helpers/wait-for.ts';

const STREAM = streamOf({ app: 'shop', env: 'prod', tenant: 't1' }, 'orders');
const COHORT: CohortSpec = { key: 'seq', filter: undefined, render: (event) => String(event.payload['seq']) };

/**
 * A bus in memory whose link can be cut: events published while cut reach no one. It can also
 * keep what is published in flight until released, as Redis pub/sub can be behind the log's reads.
 */
function createLinkedBus() {
  const listeners = new Map<string, Set<EventListener>>();
  const watchers = new Set<BusLinkListener>();
  let linked = true;
  let inFlight: [StreamRef, RealtimeEvent][] | undefined;
  const deliver = (stream: StreamRef, event: RealtimeEvent) => {
    if (!linked) return;
    if (inFlight) inFlight.push([stream, event]);
    else for (const listener of listeners.get(stream.key) ?? []) listener(event);
  };
  const bus: EventBus = {
    join(stream, listener) {
      const joined = listeners.get(stream.key) ?? new Set();
      listeners.set(stream.key, joined);
      joined.add(listener);
      return Promise.resolve(() => void joined.delete(listener));
    },
    watch(listener) {
      watchers.add(listener);
      return () => void watchers.delete(listener);
    },
  };
  return {
    bus,
    deliver,
    /** Keeps what is published from now on in flight, until `release`. */
    delay() {
      inFlight ??= [];
    },
    release() {
      const arriving = inFlight ?? [];
      inFlight = undefined;
      for (const [stream, event] of arriving) deliver(stream, event);
    },
    cut() {
      linked = false;
      for (const watcher of watchers) watcher.lost();
    },
    restore() {
      linked = true;
      for (const watcher of watchers) watcher.recovered();
    },
  };
}

/**
 * The log's `readAfter` behind a gate: while closed, a read takes its page (before or after
 * waiting, as `snapshot` says) and waits; `entered` resolves when a read reaches the gate.
 */
function gateReads(log: EventLog) {
  let gate: { opened: Promise<void>; open: () => void; entered: () => void } | undefined;
  let snapshot: 'before-waiting' | 'after-waiting' = 'before-waiting';
  const gated: EventLog = {
    ...log,
    async readAfter(stream, cursor, limit) {
      const current = gate;
      if (!current) return log.readAfter(stream, cursor, limit);
      if (snapshot === 'after-waiting') {
        current.entered();
        await current.opened;
        return log.readAfter(stream, cursor, limit);
      }
      const page = await log.readAfter(stream, cursor, limit);
      current.entered();
      await current.opened;
      return page;
    },
  };
  return {
    log: gated,
    /** Closes the gate for the next reads; resolves `entered` when the first one arrives. */
    close(mode: typeof snapshot) {
      snapshot = mode;
      let open!: () => void;
      let entered!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      const reached = new Promise<void>((resolve) => (entered = resolve));
      gate = { opened, open, entered };
      return {
        entered: reached,
        open: () => {
          gate = undefined;
          open();
        },
      };
    },
  };
}

interface Received {
  readonly seqs: number[];
  readonly errors: TributaryError[];
  readonly sink: SubscriberSink;
}

function receiver(): Received {
  const seqs: number[] = [];
  const errors: TributaryError[] = [];
  return { seqs, errors, sink: { next: (payload) => seqs.push(Number(payload.json)), fail: (error) => errors.push(error), drained: () => undefined } };
}

/**
 * A receiver whose sink takes `budget` messages, then has a replay wait (`drained`) until
 * `release`: a socket whose buffer stays full until the client reads. Live deliveries use up
 * the budget too, as they fill the same buffer.
 */
function pacedReceiver(budget: number) {
  const received = receiver();
  let allowance = budget;
  let wait: Deferred<void> | undefined;
  const sink: SubscriberSink = {
    ...received.sink,
    next(payload) {
      received.sink.next(payload);
      allowance -= 1;
    },
    drained() {
      if (allowance > 0) return undefined;
      wait ??= deferred();
      return wait.promise;
    },
  };
  return {
    seqs: received.seqs,
    errors: received.errors,
    sink,
    /** A replay is waiting on this sink. */
    get waiting() {
      return wait !== undefined;
    },
    /** The client read what was sent: the sink takes `budget` more. */
    release() {
      allowance = budget;
      const released = wait;
      wait = undefined;
      released?.resolve();
    },
  };
}

type PacedReceiver = ReturnType<typeof pacedReceiver>;

/** Lets the sink take more whenever a replay waits on it, until it has received `count` messages. */
async function readUntil(paced: PacedReceiver, count: number): Promise<void> {
  while (paced.seqs.length < count) {
    await waitFor(() => paced.waiting || paced.seqs.length >= count);
    paced.release();
  }
}

const running: Dispatcher[] = [];
afterEach(async () => {
  for (const dispatcher of running.splice(0)) await dispatcher.close();
});

function setUp(options: Partial<Pick<DispatcherOptions, 'pageSize' | 'holdBackLimit' | 'replayStallMs'>> = {}) {
  const link = createLinkedBus();
  const log = createMemoryLog({ retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 }, publish: (stream, event) => link.deliver(stream, event) });
  const gated = gateReads(log);
  const metrics = createMetrics({ processMetrics: false });
  const dispatcher = createDispatcher({ log: gated.log, bus: link.bus, logger: pino({ level: 'silent' }), metrics, ...options });
  running.push(dispatcher);
  let seq = 0;
  const publish = async (count = 1): Promise<RealtimeEvent[]> => {
    const placed: RealtimeEvent[] = [];
    for (let i = 0; i < count; i += 1) {
      seq += 1;
      placed.push(
        await log.append(STREAM, {
          id: `evt_${seq}`,
          topic: STREAM.topic,
          source: 'socket',
          type: 'message',
          payload: { seq },
          metadata: { timestamp: Date.now(), scope: STREAM.scope },
        }),
      );
    }
    return placed;
  };
  const subscribe = async (after?: string): Promise<Received> => {
    const received = receiver();
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after, sink: received.sink });
    return received;
  };
  return { dispatcher, log, gated, link, metrics, publish, subscribe };
}

async function overflows(metrics: Metrics, phase: 'resume' | 'outage'): Promise<number> {
  const { values } = await metrics.holdBackOverflows.get();
  return values.find((value) => value.labels['phase'] === phase)?.value ?? 0;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('dispatcher: resume seam', () => {
  it.each(['before-waiting', 'after-waiting'] as const)(
    'replays the log after the cursor, then live, with no gap and no duplicate when live events arrive during the replay (page taken %s)',
    async (snapshot) => {
      const { gated, publish, subscribe, dispatcher } = setUp();
      const [first] = await publish(3);
      const gate = gated.close(snapshot);
      const resuming = subscribe(first!.cursor);
      await gate.entered;
      // Live while the replay is in flight: held for the subscriber (and, when the page is taken
      // afterwards, also in the page — the seam must drop the copy).
      await publish(2);
      gate.open();
      const received = await resuming;
      await waitFor(() => received.seqs.length >= 4);
      await publish(1);
      await waitFor(() => received.seqs.length >= 5);
      expect(received.seqs).toEqual([2, 3, 4, 5, 6]);
      expect(received.errors).toEqual([]);
      expect(dispatcher.stats()).toEqual({ streams: 1, cohorts: 1, subscribers: 1, joining: 0 });
    },
  );

  // A socket closed while the replay writes to it (its buffer overflowing, say) disposes the
  // subscriber from inside the write: the catch-up must not then turn it live.
  it.each(['a replayed event', 'a held event'] as const)('leaves nothing behind of a subscriber disposed while %s is written to it', async (what) => {
    const { dispatcher, gated, publish } = setUp();
    const join = async (cohort: CohortSpec, sink: SubscriberSink, after?: string) => dispatcher.subscribe({ stream: STREAM, cohort, after, sink });
    // Another cohort keeps the stream; a live member shares the resuming subscriber's cohort.
    const other = receiver();
    await join({ ...COHORT, key: 'other' }, other.sink);
    const member = await join(COHORT, receiver().sink);
    const [first] = await publish(2);
    const gate = gated.close('before-waiting');
    const seqs: number[] = [];
    // The replay gives seq 2; seq 3 arrives live while the page waits at the gate, so it is held.
    const disposeAt = what === 'a replayed event' ? 2 : 3;
    const sink: SubscriberSink = {
      next: (payload) => {
        seqs.push(Number(payload.json));
        if (Number(payload.json) === disposeAt) handle.dispose();
      },
      fail: () => undefined,
      drained: () => undefined,
    };
    const handle = await join(COHORT, sink, first!.cursor);
    await gate.entered;
    await publish(1);
    gate.open();
    await waitFor(() => seqs.includes(disposeAt));
    member.dispose();
    await publish(1);
    await waitFor(() => other.seqs.length === 4);
    expect(seqs).toEqual(range(2, disposeAt));
    expect(dispatcher.stats()).toEqual({ streams: 1, cohorts: 1, subscribers: 1, joining: 0 });
  });

  it('reads the log page by page up to the seam', async () => {
    const { publish, subscribe } = setUp({ pageSize: 2 });
    const [first] = await publish(7);
    const received = await subscribe(first!.cursor);
    await waitFor(() => received.seqs.length >= 6);
    await publish(1);
    await waitFor(() => received.seqs.length >= 7);
    expect(received.seqs).toEqual(range(2, 8));
  });

  it('shares rendering with a live member of its cohort without handing it the replay', async () => {
    const { publish, subscribe } = setUp();
    const live = await subscribe();
    const [first] = await publish(3);
    const resuming = await subscribe(first!.cursor);
    await waitFor(() => resuming.seqs.length >= 2);
    await publish(1);
    await waitFor(() => resuming.seqs.length >= 3 && live.seqs.length >= 4);
    expect(live.seqs).toEqual([1, 2, 3, 4]);
    expect(resuming.seqs).toEqual([2, 3, 4]);
  });

  it('drops for a resumed subscriber the live copy of an event the log gave it when the copy arrives after it turned live', async () => {
    const { link, publish, subscribe } = setUp();
    // The stream is joined and has delivered 1 and 2: the live copy of 3 is not one it has seen.
    const live = await subscribe();
    const [first] = await publish(2);
    await waitFor(() => live.seqs.length === 2);
    link.delay();
    await publish(1); // 3: in the log, its live copy still on its way
    const resuming = await subscribe(first!.cursor);
    await waitFor(() => resuming.seqs.length === 2); // 2 and 3 from the log, and live from there
    link.release();
    await publish(1);
    await waitFor(() => live.seqs.length === 4);
    expect(resuming.seqs).toEqual([2, 3, 4]);
    expect(live.seqs).toEqual([1, 2, 3, 4]);
    expect(resuming.errors).toEqual([]);
  });
});

describe('dispatcher: hold-back overflow', () => {
  it('re-reads the log when more live events arrive during a replay than it may hold, and counts the overflow', async () => {
    const { gated, publish, subscribe, metrics } = setUp({ holdBackLimit: 2 });
    const [first] = await publish(2);
    const gate = gated.close('before-waiting');
    const resuming = subscribe(first!.cursor);
    await gate.entered;
    await publish(5); // 3 to 7: more than 2 held, so none are kept
    gate.open();
    const received = await resuming;
    await waitFor(() => received.seqs.length >= 6);
    await publish(1);
    await waitFor(() => received.seqs.length >= 7);
    expect(received.seqs).toEqual(range(2, 8));
    expect(await overflows(metrics, 'resume')).toBe(1);
    expect(await overflows(metrics, 'outage')).toBe(0);
  });

  it('counts nothing when the held events fit', async () => {
    const { gated, publish, subscribe, metrics } = setUp({ holdBackLimit: 2 });
    const [first] = await publish(2);
    const gate = gated.close('before-waiting');
    const resuming = subscribe(first!.cursor);
    await gate.entered;
    await publish(2);
    gate.open();
    const received = await resuming;
    await waitFor(() => received.seqs.length >= 3);
    expect(received.seqs).toEqual([2, 3, 4]);
    expect(await overflows(metrics, 'resume')).toBe(0);
  });
});

describe('dispatcher: replays at the pace of the sink', () => {
  it('replays the log no faster than the sink passes it on, then goes live with no gap and no duplicate', async () => {
    const { dispatcher, publish } = setUp();
    const [first] = await publish(6);
    const paced = pacedReceiver(2);
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: first!.cursor, sink: paced.sink });
    await waitFor(() => paced.waiting);
    expect(paced.seqs).toEqual([2, 3]);
    await publish(2); // 7, 8: live while the replay waits, held for it
    paced.release();
    await waitFor(() => paced.waiting);
    expect(paced.seqs).toEqual([2, 3, 4, 5]);
    paced.release();
    // The held events wait for the sink too.
    await waitFor(() => paced.waiting);
    expect(paced.seqs).toEqual(range(2, 7));
    await publish(1); // 9: held behind 8
    paced.release();
    await waitFor(() => paced.seqs.length === 8);
    await publish(1); // 10: live
    expect(paced.seqs).toEqual(range(2, 10));
    expect(paced.waiting).toBe(false);
    expect(paced.errors).toEqual([]);
  });

  it('reads the log again when more live events arrive than it may hold while held ones wait for the sink', async () => {
    const { dispatcher, gated, publish, metrics } = setUp({ holdBackLimit: 3 });
    const [first] = await publish(2);
    const gate = gated.close('before-waiting');
    const paced = pacedReceiver(1);
    const subscribing = dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: first!.cursor, sink: paced.sink });
    await gate.entered;
    await publish(2); // 3, 4: held while the page (2) waits at the gate
    gate.open();
    await subscribing;
    await waitFor(() => paced.waiting);
    expect(paced.seqs).toEqual([2]); // 3, taken from the held ones, waits for the sink
    await publish(3); // 5, 6 held behind 4; 7 is one more than may be held
    await readUntil(paced, 6);
    await publish(1);
    await readUntil(paced, 7);
    expect(paced.seqs).toEqual(range(2, 8));
    expect(paced.errors).toEqual([]);
    expect(await overflows(metrics, 'resume')).toBe(1);
  });

  it('catches a stream up after an outage at the pace of its slowest sink, then hands on what arrived meanwhile', async () => {
    const { dispatcher, link, publish, subscribe } = setUp();
    const paced = pacedReceiver(2);
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: paced.sink });
    const fast = await subscribe();
    await publish(1);
    await waitFor(() => fast.seqs.length === 1);
    paced.release();

    link.cut();
    await publish(5); // 2 to 6: lost by the bus
    link.restore();
    await waitFor(() => paced.waiting);
    expect(paced.seqs).toEqual([1, 2, 3]);
    expect(fast.seqs).toEqual([1, 2, 3]);
    await publish(2); // 7, 8: live again, held until the log's are delivered
    await readUntil(paced, 8);
    await publish(1);
    await waitFor(() => fast.seqs.length === 9);
    expect(paced.seqs).toEqual(range(1, 9));
    expect(fast.seqs).toEqual(range(1, 9));
    expect([...paced.errors, ...fast.errors]).toEqual([]);
  });
});

describe('dispatcher: a socket that stops reading during a catch-up', () => {
  it('holds up the stream\'s catch-up for replayStallMs at most: its subscriber then catches up alone, when it reads again, with no gap and no duplicate', async () => {
    const { dispatcher, link, publish, subscribe } = setUp({ replayStallMs: 50 });
    const stalled = pacedReceiver(2);
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: stalled.sink });
    const fast = await subscribe();
    await publish(1);
    await waitFor(() => fast.seqs.length === 1);

    link.cut();
    await publish(5); // 2 to 6: lost by the bus, read from the log
    link.restore();
    // The stalled socket never drains: the others get the catch-up, then live events, without it.
    await waitFor(() => fast.seqs.length === 6, { message: `fast got ${fast.seqs.join()}` });
    await publish(2);
    await waitFor(() => fast.seqs.length === 8);
    expect(fast.seqs).toEqual(range(1, 8));
    expect(stalled.seqs).toEqual([1, 2]);

    // It reads again: the rest from the log at its pace, then live.
    await readUntil(stalled, 8);
    await publish(1);
    await waitFor(() => fast.seqs.length === 9 && stalled.seqs.length === 9);
    expect(stalled.seqs).toEqual(range(1, 9));
    expect(fast.seqs).toEqual(range(1, 9));
    expect([...stalled.errors, ...fast.errors]).toEqual([]);
  });
});

describe('dispatcher: bus outage', () => {
  it('delivers from the log what was published while the link was cut, then what arrived live during the catch-up, each once and in order', async () => {
    const { gated, link, publish, subscribe } = setUp();
    const live = await subscribe();
    await publish(2);
    await waitFor(() => live.seqs.length >= 2);

    link.cut();
    await publish(3); // 3 to 5: lost by the bus
    const gate = gated.close('before-waiting');
    link.restore();
    await gate.entered;
    await publish(2); // 6, 7: live again, held until the log's are delivered
    gate.open();
    await waitFor(() => live.seqs.length >= 7);
    await publish(1);
    await waitFor(() => live.seqs.length >= 8);
    expect(live.seqs).toEqual(range(1, 8));
    expect(live.errors).toEqual([]);
  });

  it('re-reads the log when more live events arrive during the catch-up than the stream may hold, and counts the overflow', async () => {
    const { gated, link, publish, subscribe, metrics } = setUp({ holdBackLimit: 2 });
    const live = await subscribe();
    await publish(1);
    await waitFor(() => live.seqs.length >= 1);

    link.cut();
    await publish(2);
    const gate = gated.close('before-waiting');
    link.restore();
    await gate.entered;
    await publish(4); // more than 2: dropped, to be read from the log again
    gate.open();
    await waitFor(() => live.seqs.length >= 7);
    await publish(1);
    await waitFor(() => live.seqs.length >= 8);
    expect(live.seqs).toEqual(range(1, 8));
    expect(await overflows(metrics, 'outage')).toBe(1);
  });

  it('lets a resuming subscriber wait for the stream to recover before it turns live', async () => {
    const { link, publish, subscribe } = setUp();
    const [first] = await publish(2);
    const anchor = await subscribe(); // joins the stream
    link.cut();
    const resuming = await subscribe(first!.cursor);
    await publish(2); // 3, 4: lost by the bus, in the log
    link.restore();
    await waitFor(() => resuming.seqs.length >= 3 && anchor.seqs.length >= 2);
    await publish(1);
    await waitFor(() => resuming.seqs.length >= 4);
    expect(resuming.seqs).toEqual([2, 3, 4, 5]);
    expect(anchor.seqs).toEqual([3, 4, 5]);
  });
});

describe('dispatcher: a replaced history', () => {
  const isResync = (error: TributaryError) => error.code === ErrorCode.RESYNC_REQUIRED;

  it('resyncs only the subscribers holding a position in the old history when a new one arrives live', async () => {
    const { log, publish, subscribe } = setUp();
    const positioned = await subscribe();
    const [first] = await publish(1);
    await waitFor(() => positioned.seqs.length === 1);
    const resumedInOld = await subscribe(first!.cursor);
    const idle = await subscribe(); // no event yet: holds no position
    await log.renewEpochs(() => true); // what a recreated replication slot does
    const fresh = await subscribe();

    await publish(1);
    await waitFor(() => fresh.seqs.length === 1);
    expect(positioned.errors.map(isResync)).toEqual([true]);
    expect(resumedInOld.errors.map(isResync)).toEqual([true]);
    expect(positioned.seqs).toEqual([1]);
    expect(idle.seqs).toEqual([2]);
    expect(fresh.seqs).toEqual([2]);
    expect([...idle.errors, ...fresh.errors]).toEqual([]);
  });

  it('resyncs a subscriber holding a position when the history is replaced before the stream delivered anything live', async () => {
    const { dispatcher, log, publish, subscribe } = setUp();
    const resumed = receiver();
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: await log.head(STREAM), sink: resumed.sink });
    const idle = await subscribe();
    await log.renewEpochs(() => true);
    await publish(1);
    await waitFor(() => idle.seqs.length === 1 && resumed.errors.length === 1);
    expect(resumed.errors.map(isResync)).toEqual([true]);
    expect(resumed.seqs).toEqual([]);
    expect(idle.seqs).toEqual([1]);
    expect(idle.errors).toEqual([]);
  });

  it('after an outage in which the log lost the history, resyncs the holders and hands the others the new history from its start', async () => {
    const { log, link, publish, subscribe } = setUp();
    const positioned = await subscribe();
    await publish(1);
    await waitFor(() => positioned.seqs.length === 1);

    link.cut();
    await log.renewEpochs(() => true); // what Redis restarting without its data does
    const fresh = await subscribe();
    await publish(2); // the new history's first events, lost by the bus
    link.restore();
    await waitFor(() => fresh.seqs.length >= 2 && positioned.errors.length === 1);
    await publish(1);
    await waitFor(() => fresh.seqs.length >= 3);
    expect(positioned.errors.map(isResync)).toEqual([true]);
    expect(positioned.seqs).toEqual([1]);
    expect(fresh.seqs).toEqual([2, 3, 4]);
    expect(fresh.errors).toEqual([]);
  });
});

describe('dispatcher: a quiet stream', () => {
  it('keeps the history of a stream it has subscribers for, so a quiet spell longer than the retention age resyncs no one', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const link = createLinkedBus();
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 60_000 }, publish: (stream, event) => link.deliver(stream, event), sweepIntervalMs: 1_000 });
    onTestFinished(() => log.close());
    const dispatcher = createDispatcher({ log, bus: link.bus, logger: pino({ level: 'silent' }) });
    running.push(dispatcher);
    const publish = (seq: number) =>
      log.append(STREAM, { id: `evt_${seq}`, topic: STREAM.topic, source: 'socket', type: 'message', payload: { seq }, metadata: { timestamp: Date.now(), scope: STREAM.scope } });
    const live = receiver();
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: undefined, sink: live.sink });
    // As a document subscription does: resumed from the head, it holds a position from the start.
    const resumed = receiver();
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: await log.head(STREAM), sink: resumed.sink });
    await publish(1);
    await waitFor(() => live.seqs.length === 1 && resumed.seqs.length === 1);

    // Two retention ages without an event; the log sweeps every second.
    for (let step = 0; step < 8; step += 1) await vi.advanceTimersByTimeAsync(15_000);
    await publish(2);
    const settled = (received: Received) => received.seqs.length === 2 || received.errors.length > 0;
    await waitFor(() => settled(live) && settled(resumed));
    expect([...live.errors, ...resumed.errors]).toEqual([]);
    expect(live.seqs).toEqual([1, 2]);
    expect(resumed.seqs).toEqual([1, 2]);
  });
});
