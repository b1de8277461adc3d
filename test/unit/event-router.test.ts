/**
 * The router's per-entity order, as a unit: a fake log in memory whose appends the test releases
 * one by one, so a slow append of one entity's event can be held while later ones are routed.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RawEventInput, RealtimeEvent, UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import type { StreamRef } from '../../src/pipeline/stream.ts';

interface PendingAppend {
  readonly ids: readonly string[];
  release(): void;
  fail(error: Error): void;
}

/** A log whose appends wait until the test releases them; `placed` lists ids in append order. */
function createHeldLog() {
  const pending: PendingAppend[] = [];
  const placed: string[] = [];
  let seq = 0;
  const hold = <T>(events: readonly UnplacedEvent[], place: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      pending.push({
        ids: events.map((event) => event.id),
        release: () => {
          placed.push(...events.map((event) => event.id));
          resolve(place());
        },
        fail: reject,
      });
    });
  const cursorOf = (event: UnplacedEvent): RealtimeEvent => ({ ...event, cursor: String((seq += 1)) });
  const log: EventLog = {
    append: (_stream: StreamRef, event) => hold([event], () => cursorOf(event)),
    appendMany: (_stream: StreamRef, events) => hold(events, () => events.map(cursorOf)),
    readAfter: () => Promise.resolve([]),
    head: () => Promise.resolve('0'),
    renewEpochs: () => Promise.resolve(0),
    keepAlive: () => Promise.resolve(),
    retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 },
    eventsBetween: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  /** Lets the microtasks run, so every append that can start has started. */
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  const waitingIds = () => pending.map((append) => append.ids.join('+'));
  const take = (id: string): PendingAppend => {
    const index = pending.findIndex((append) => append.ids.includes(id));
    if (index < 0) throw new Error(`no pending append of ${id}; pending: ${waitingIds().join(', ')}`);
    return pending.splice(index, 1)[0]!;
  };
  return { log, placed, settle, waitingIds, take };
}

const scope = { app: 'shop', env: 'prod', tenant: 't1' };

function input(id: string, entity: string | undefined, tenant = 't1'): RawEventInput {
  return { id, topic: 'orders', source: 'database', type: 'database.update', payload: {}, scope: { ...scope, tenant }, entity };
}

function setUp() {
  const held = createHeldLog();
  const router = createEventRouter({ log: held.log, logger: pino({ level: 'silent' }) });
  return { ...held, router };
}

describe('event router: per-entity order', () => {
  it("holds an entity's next event until the previous one is in the log, while other entities go ahead", async () => {
    const { router, settle, waitingIds, take, placed } = setUp();
    const a1 = router.route(input('a1', 'A'));
    const a2 = router.route(input('a2', 'A'));
    const b1 = router.route(input('b1', 'B'));
    await settle();
    expect(waitingIds()).toEqual(['a1', 'b1']);

    take('b1').release();
    await b1;
    await settle();
    expect(waitingIds()).toEqual(['a1']);

    take('a1').release();
    await a1;
    await settle();
    expect(waitingIds()).toEqual(['a2']);
    take('a2').release();
    await a2;
    expect(placed).toEqual(['b1', 'a1', 'a2']);
  });

  it('keeps the order after a failed append: the next event of the entity is routed, not stuck', async () => {
    const { router, settle, waitingIds, take } = setUp();
    const a1 = router.route(input('a1', 'A'));
    const a2 = router.route(input('a2', 'A'));
    await settle();
    expect(waitingIds()).toEqual(['a1']);
    take('a1').fail(new Error('log unavailable'));
    await expect(a1).rejects.toThrow('log unavailable');
    await settle();
    expect(waitingIds()).toEqual(['a2']);
    take('a2').release();
    expect((await a2).id).toBe('a2');
  });

  it('orders a batch after earlier events of any entity it contains, and later events after the batch', async () => {
    const { router, settle, waitingIds, take, placed } = setUp();
    const a1 = router.route(input('a1', 'A'));
    const batch = router.routeMany([input('b1', 'B'), input('a2', 'A')]);
    const b2 = router.route(input('b2', 'B'));
    const c1 = router.route(input('c1', 'C'));
    await settle();
    expect(waitingIds()).toEqual(['a1', 'c1']);

    take('a1').release();
    await a1;
    await settle();
    expect(waitingIds()).toEqual(['c1', 'b1+a2']);
    take('b1').release();
    expect((await batch).map((event) => event.id)).toEqual(['b1', 'a2']);
    await settle();
    take('b2').release();
    take('c1').release();
    await Promise.all([b2, c1]);
    expect(placed).toEqual(['a1', 'b1', 'a2', 'b2', 'c1']);
  });

  it('keeps entities of different tenants apart, and never holds events without an entity', async () => {
    const { router, settle, waitingIds } = setUp();
    void router.route(input('a1', 'A', 't1'));
    void router.route(input('a1-other-tenant', 'A', 't2'));
    void router.route(input('n1', undefined));
    void router.route(input('n2', undefined));
    await settle();
    expect(waitingIds().sort()).toEqual(['a1', 'a1-other-tenant', 'n1', 'n2']);
  });
});
