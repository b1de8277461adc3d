/**
 * A stream someone listens to is not forgotten by the log (EventLog.keepAlive): were it
 * forgotten, its next event would start a new history and every subscriber holding a position —
 * one that resumed with `after` — would end RESYNC_REQUIRED. The periodic keep-alive alone leaves
 * a gap: a stream joined when less of its life is left than the time to the next tick expires
 * under its listeners. Joining keeps it alive at once.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TributaryError } from '../../src/errors.ts';
import { createDispatcher } from '../../src/pipeline/dispatch/dispatcher.ts';
import type { CohortSpec, SubscriberSink } from '../../src/pipeline/dispatch/subscription-contract.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createMemoryBus } from '../../src/pipeline/pubsub/memory-bus.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

const STREAM = streamOf({ app: 'shop', env: 'prod', tenant: 't1' }, 'orders');
const COHORT: CohortSpec = { key: 'seq', filter: undefined, render: (event) => String(event.payload['seq']) };

afterEach(() => {
  vi.useRealTimers();
});

describe('dispatcher with the memory log: a stream joined late in its life', () => {
  it('does not resync a subscriber that resumed shortly before the stream would have expired', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const maxAgeMs = 60_000;
    const bus = createMemoryBus();
    const log = createMemoryLog({ retention: { maxEvents: 10_000, maxAgeMs }, publish: (stream, event) => bus.deliver(stream, event), sweepIntervalMs: 1_000 });
    // The periodic keep-alive every maxAgeMs / 4 (the default).
    const dispatcher = createDispatcher({ log, bus, logger: pino({ level: 'silent' }) });
    let seq = 0;
    const publish = () =>
      log.append(STREAM, {
        id: `evt_${++seq}`,
        topic: STREAM.topic,
        source: 'socket',
        type: 'message',
        payload: { seq },
        metadata: { timestamp: Date.now(), scope: STREAM.scope },
      });
    await vi.advanceTimersByTimeAsync(1_000);
    const first = await publish();

    // Just before the quiet stream expires, a client resumes from its last event.
    await vi.advanceTimersByTimeAsync(maxAgeMs - 500);
    const seqs: string[] = [];
    const errors: TributaryError[] = [];
    const sink: SubscriberSink = { next: (payload) => seqs.push(payload.json), fail: (error) => errors.push(error), drained: () => undefined };
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: first.cursor, sink });
    await vi.advanceTimersByTimeAsync(10);

    // Connected all along, it gets the topic's next event a little later.
    await vi.advanceTimersByTimeAsync(maxAgeMs / 3);
    await publish();
    await vi.advanceTimersByTimeAsync(10);

    expect(errors.map((error) => error.code)).toEqual([]);
    expect(seqs).toEqual(['2']);
    await dispatcher.close();
    await log.close();
  });
});
