/**
 * Tenant isolation's second check (docs/architecture.md §5: "Stream keys include the scope; the
 * dispatcher checks it again"): an event whose own scope is not its stream's — a producer placing
 * tenant B's event on tenant A's stream — reaches none of the stream's subscribers, live or
 * replayed from the log. It is dropped once per stream, logged at error level and counted.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createDispatcher } from '../../src/pipeline/dispatch/dispatcher.ts';
import type { CohortSpec, SubscriberSink } from '../../src/pipeline/dispatch/subscription-contract.ts';
import type { UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createMemoryBus } from '../../src/pipeline/pubsub/memory-bus.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { waitFor } from '../helpers/wait-for.ts';

const TENANT_A: Scope = { app: 'shop', env: 'prod', tenant: 'a' };
const TENANT_B: Scope = { app: 'shop', env: 'prod', tenant: 'b' };
const STREAM_A = streamOf(TENANT_A, 'orders');

const cohort = (key: string): CohortSpec => ({ key, filter: undefined, render: (event) => String(event.payload['n']) });

function setUp() {
  const bus = createMemoryBus();
  const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 60_000 }, publish: (stream, event) => bus.deliver(stream, event) });
  const metrics = createMetrics({ processMetrics: false });
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const dispatcher = createDispatcher({ log, bus, logger, metrics });
  let n = 0;
  // Always placed on tenant A's stream, whatever scope the event says it is of.
  const append = (scope: Scope) => {
    n += 1;
    const event: UnplacedEvent = { id: `evt_${n}`, topic: 'orders', source: 'socket', type: 't', payload: { n }, metadata: { timestamp: Date.now(), scope } };
    return log.append(STREAM_A, event);
  };
  const receiver = () => {
    const got: string[] = [];
    const failures: unknown[] = [];
    const sink: SubscriberSink = { next: (payload) => got.push(payload.json), fail: (error) => failures.push(error), drained: () => undefined };
    return { got, failures, sink };
  };
  const dropped = async () => (await metrics.eventsOutOfScope.get()).values.reduce((sum, value) => sum + value.value, 0);
  const errorsLogged = () => lines.filter((line) => line.level >= 50);
  const close = async () => {
    await dispatcher.close();
    await log.close();
  };
  return { dispatcher, append, receiver, dropped, errorsLogged, close };
}

describe('dispatcher: an event whose scope is not its stream\'s', () => {
  it('hands a live one to no subscriber, and drops, logs and counts it once for the stream', async () => {
    const { dispatcher, append, receiver, dropped, errorsLogged, close } = setUp();
    const one = receiver();
    const two = receiver();
    await dispatcher.subscribe({ stream: STREAM_A, cohort: cohort('one'), after: undefined, sink: one.sink });
    await dispatcher.subscribe({ stream: STREAM_A, cohort: cohort('two'), after: undefined, sink: two.sink });

    await append(TENANT_B);
    await append(TENANT_A);

    expect(one.got).toEqual(['2']);
    expect(two.got).toEqual(['2']);
    expect(await dropped()).toBe(1);
    expect(errorsLogged()).toHaveLength(1);
    await close();
  });

  it('hands one replayed from the log to no resuming subscriber', async () => {
    const { dispatcher, append, receiver, dropped, errorsLogged, close } = setUp();
    const first = await append(TENANT_A);
    await append(TENANT_B);
    await append(TENANT_A);
    const resumer = receiver();

    await dispatcher.subscribe({ stream: STREAM_A, cohort: cohort('one'), after: first.cursor, sink: resumer.sink });
    await append(TENANT_A);
    await waitFor(() => resumer.got.includes('4'));

    expect(resumer.got).toEqual(['3', '4']);
    expect(resumer.failures).toEqual([]);
    expect(await dropped()).toBe(1);
    expect(errorsLogged()).toHaveLength(1);
    await close();
  });
});
