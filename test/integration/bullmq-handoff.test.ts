/**
 * New deliveries handed to the BullMQ worker against a real Postgres and Redis, with a deliverer
 * that only records what it is handed (a pure fake: the HTTP side is tested in webhooks.test.ts).
 * The routing tap's insert leases a new delivery for the worker of its own process, and the job
 * naming it carries that lease. A worker of another process, with no copy kept, takes the job and
 * claims the row by id, the lease the job names counting as free (migrations/0020): it is attempted
 * at once, under a lease of its own — not when the insert's lease runs out. A job that names no
 * lease finds the row held and leaves it. The worker of the process that stored it sends the very
 * delivery kept in memory, under the insert's lease, with no claim, once. A head whose job names the
 * insert's lease, parked because its endpoint has no room in the worker, keeps that lease: it is
 * claimed with it once a place frees (at once, again), and it is given back if the worker closes
 * first. The reconciler's look at the table is set far beyond the tests' timeouts: every attempt
 * here comes from a job (the reconciler has a suite of its own).
 *
 * And the worker's send slots, its clock in the test's hand: a delivery leased for a slot that every
 * attempt holds (a receiver that hangs) must not wait there for the better part of its lease — an
 * attempt started that late could outlast it. Past a quarter of its lease it gives the lease back and
 * is queued again, and it is sent under a lease claimed anew when a slot is free.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { startBullmqDelivery, type BullmqDeliveryOptions } from '../../src/pipeline/webhooks/bullmq-delivery.ts';
import { createBullmqScheduler, type BullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { getDelivery, storeDeliveries, type Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { dueHeads } from '../../src/pipeline/webhooks/due-heads.ts';
import type { WebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { recordingDeliverer } from '../helpers/recording-deliverer.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openWebhookQueue } from '../helpers/webhook-queue.ts';

const logger = createLogger({ level: 'silent' });
/** The insert's lease and the worker's: far longer than any test here may take. */
const LEASE_MS = 30_000;
/** Longer than any test here may take: no delivery may be queued by the reconciler. */
const NEVER_MS = 600_000;

let fixture: DeliveryFixture;
let db: Database;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

/** A process's scheduler on `prefix` (the queue's producing side); closed after the test. */
function openScheduler(prefix: string): BullmqScheduler {
  const scheduler = createBullmqScheduler({ redisUrl: testRedisUrl(), prefix, logger });
  onTestFinished(() => scheduler.close());
  return scheduler;
}

/** A process's BullMQ worker on `prefix`, with its own scheduler (which it attaches its intake to); closed after the test. */
function startWorker(
  prefix: string,
  deliverer: WebhookDeliverer,
  settings: Pick<BullmqDeliveryOptions, 'concurrency' | 'now'> & Partial<Pick<BullmqDeliveryOptions, 'maxConcurrencyOf'>> = { concurrency: 4 },
): BullmqScheduler {
  const scheduler = openScheduler(prefix);
  const worker = startBullmqDelivery({
    redisUrl: testRedisUrl(),
    prefix,
    db,
    deliverer,
    scheduler,
    leaseMs: LEASE_MS,
    maxConcurrencyOf: () => 10,
    reconcileMs: NEVER_MS,
    logger,
    ...settings,
  });
  // Registered after its scheduler's: closed before it.
  onTestFinished(() => worker.close());
  return scheduler;
}

/** One new delivery stored leased by its insert, as the routing tap stores it (lane of its own). */
async function storeLeased(lane: string, leaseMs: number): Promise<Delivery & { lease: string }> {
  const {
    leased: [stored],
  } = await storeDeliveries(db, [fixture.delivery(lane)], { lease: [true], leaseMs });
  expect(stored?.lease).toEqual(expect.any(String));
  return stored as Delivery & { lease: string };
}

/**
 * Parks another process's new delivery, its job naming the insert's lease, in a worker whose one
 * place for the endpoint (`maxConcurrencyOf` 1) an attempt holds and hangs in (`handed[0]`).
 * Resolves with it once both jobs are done: the second head was neither sent nor claimed.
 */
async function parkBehindHanging(lane: string, storing: BullmqScheduler, drained: () => Promise<boolean>, recording: ReturnType<typeof recordingDeliverer>) {
  const { handed, handedOver } = recording;
  const {
    heads: [busy],
  } = await storeDeliveries(db, [fixture.delivery(`${lane}:busy`)]);
  await storing.schedule([busy!]);
  await handedOver(1);
  expect(handed[0]!.delivery.id).toBe(busy!.id);

  const named = await storeLeased(`${lane}:named`, LEASE_MS);
  await storing.schedule([{ id: named.id, endpointId: named.endpointId, lease: named.lease }]);
  await waitFor(drained, { message: 'the job naming the parked delivery was not consumed' });
  // Parked: not sent, and its row still held by the insert's lease (not claimed, not given back).
  expect(handed).toHaveLength(1);
  expect((await getDelivery(db, named.id))?.lease).toBe(named.lease);
  return named;
}

describe('BullMQ handoff of new deliveries', () => {
  it('attempts another process’s new delivery at once when its job names the insert’s lease, under a lease of its own — and leaves it held when the job names none', { timeout: 10_000 }, async () => {
    const prefix = uniquePrefix();
    const { drained } = openWebhookQueue(prefix);
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    startWorker(prefix, deliverer);
    // The process that stored them: its insert leased them (for its own worker, which keeps no copy
    // here — no worker of that process runs), and its scheduler adds their jobs.
    const storing = openScheduler(prefix);
    const unnamed = await storeLeased('other:unnamed', LEASE_MS);
    const named = await storeLeased('other:named', LEASE_MS);
    try {
      // A job without the lease: the row is held by the insert's lease, so the claim leaves it.
      await storing.schedule([{ id: unnamed.id, endpointId: unnamed.endpointId }]);
      await waitFor(drained, { message: 'the job naming no lease was not consumed' });
      expect(handed).toEqual([]);
      expect((await getDelivery(db, unnamed.id))?.lease).toBe(unnamed.lease);

      // With the lease: taken over at once, long before the insert's lease runs out.
      await storing.schedule([{ id: named.id, endpointId: named.endpointId, lease: named.lease }]);
      await handedOver(1);
      const attempted = handed[0]!.delivery;
      expect(attempted.id).toBe(named.id);
      expect(attempted.lease).toEqual(expect.any(String));
      expect(attempted.lease).not.toBe(named.lease);
      // The row is held under the worker's new lease, and recording under it finishes the delivery.
      expect((await getDelivery(db, named.id))?.lease).toBe(attempted.lease);
      await handed[0]!.finish();
      expect((await getDelivery(db, named.id))?.state).toBe('delivered');

      // Both jobs done: the delivery named without its lease was never attempted, and is still held by its insert.
      await waitFor(drained, { message: 'the job naming the lease was not consumed' });
      expect(handed.map((entry) => entry.delivery.id)).toEqual([named.id]);
      const left = await getDelivery(db, unnamed.id);
      expect(left?.state).toBe('pending');
      expect(left?.lease).toBe(unnamed.lease);
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
    }
  });

  it('sends the very delivery its own process stored and kept, under the insert’s lease (no claim), once', { timeout: 10_000 }, async () => {
    const prefix = uniquePrefix();
    const { drained } = openWebhookQueue(prefix);
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const scheduler = startWorker(prefix, deliverer);
    // As the routing tap stores one: places reserved in the worker's intake, the insert leases the
    // delivery for the worker's lease, the intake keeps it, and the job names it with that lease.
    const intake = scheduler.intake();
    if (!intake) throw new Error('the worker attached no intake to its scheduler');
    expect(intake.leaseMs).toBe(LEASE_MS);
    expect(intake.reserve(fixture.endpointId, 1)).toBe(1);
    const stored = await storeDeliveries(db, [fixture.delivery('own:kept')], { lease: [true], leaseMs: intake.leaseMs });
    const [kept] = stored.leased;
    if (!kept?.lease) throw new Error('the insert leased no delivery');
    const heads = intake.start(stored.leased);
    expect(heads).toEqual([{ id: kept.id, endpointId: fixture.endpointId, lease: kept.lease }]);
    try {
      await scheduler.schedule(heads);
      await handedOver(1);
      // The object kept, under the insert's lease: the row was not claimed (a claim leases it anew).
      expect(handed[0]!.delivery).toBe(kept);
      expect(handed[0]!.delivery.lease).toBe(kept.lease);
      expect((await getDelivery(db, kept.id))?.lease).toBe(kept.lease);

      await waitFor(drained, { message: 'the job was not consumed' });
      expect(handed).toHaveLength(1);
      await handed[0]!.finish();
      expect((await getDelivery(db, kept.id))?.state).toBe('delivered');
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
    }
  });
  it('gives back, at close, the lease of a delivery kept and never sent: it is due at once for whichever worker takes it', { timeout: 10_000 }, async () => {
    const prefix = uniquePrefix();
    const { deliverer, handed } = recordingDeliverer(db);
    const scheduler = openScheduler(prefix);
    const worker = startBullmqDelivery({ redisUrl: testRedisUrl(), prefix, db, deliverer, scheduler, concurrency: 4, leaseMs: LEASE_MS, maxConcurrencyOf: () => 10, reconcileMs: NEVER_MS, logger });
    const intake = scheduler.intake();
    if (!intake) throw new Error('the worker attached no intake to its scheduler');
    expect(intake.reserve(fixture.endpointId, 1)).toBe(1);
    const stored = await storeDeliveries(db, [fixture.delivery('own:closing')], { lease: [true], leaseMs: intake.leaseMs });
    const [kept] = stored.leased;
    if (!kept?.lease) throw new Error('the insert leased no delivery');
    intake.start(stored.leased);
    expect((await getDelivery(db, kept.id))?.lease).toBe(kept.lease);

    // Closed before its job came: no longer held — and the closed worker's scheduler keeps nothing more.
    await worker.close();
    expect((await getDelivery(db, kept.id))?.lease).toBeNull();
    expect(scheduler.intake()).toBeUndefined();
    expect(handed).toHaveLength(0);
  });

  it('keeps the lease a job names for a head parked while its endpoint has no room, and claims it with that lease once a place frees: sent at once, under a lease of its own', { timeout: 10_000 }, async () => {
    const prefix = uniquePrefix();
    const { drained } = openWebhookQueue(prefix);
    const recording = recordingDeliverer(db);
    const { handed, handedOver } = recording;
    startWorker(prefix, recording.deliverer, { concurrency: 4, maxConcurrencyOf: () => 1 });
    // Registered after the worker's: the hanging attempts end before it closes.
    onTestFinished(async () => {
      await Promise.all(handed.map((entry) => entry.finish()));
    });
    const named = await parkBehindHanging('parked:sent', openScheduler(prefix), drained, recording);

    // The hanging attempt ends and frees the endpoint's place: the parked head is claimed with the
    // lease its job named. Without it the row is held by the insert for the whole lease, and no
    // other job names it (the reconciler's look is far off): it would not be sent within the test.
    await handed[0]!.finish();
    await handedOver(2);
    const attempted = handed[1]!.delivery;
    expect(attempted.id).toBe(named.id);
    expect(attempted.lease).toEqual(expect.any(String));
    expect(attempted.lease).not.toBe(named.lease);
    expect((await getDelivery(db, named.id))?.lease).toBe(attempted.lease);
    await handed[1]!.finish();
    expect((await getDelivery(db, named.id))?.state).toBe('delivered');
    expect(handed).toHaveLength(2);
  });

  it('gives back, at close, the lease a job named for a head parked and never sent: it is due at once for whichever worker takes it', { timeout: 10_000 }, async () => {
    const prefix = uniquePrefix();
    const { drained } = openWebhookQueue(prefix);
    const recording = recordingDeliverer(db);
    const { handed } = recording;
    const scheduler = openScheduler(prefix);
    const worker = startBullmqDelivery({ redisUrl: testRedisUrl(), prefix, db, deliverer: recording.deliverer, scheduler, concurrency: 4, leaseMs: LEASE_MS, maxConcurrencyOf: () => 1, reconcileMs: NEVER_MS, logger });
    // Closed by the test; again here should it fail before (closing twice is harmless).
    onTestFinished(() => worker.close());
    onTestFinished(async () => {
      await Promise.all(handed.map((entry) => entry.finish()));
    });
    const named = await parkBehindHanging('parked:closing', openScheduler(prefix), drained, recording);

    // Closing waits for the hanging attempt, but gives the parked head's lease back at once: it is
    // due, not held until the insert's lease runs out.
    const closed = worker.close();
    await waitFor(async () => (await getDelivery(db, named.id))?.lease === null, { message: 'the parked delivery’s lease was not given back' });
    expect((await dueHeads(db, 0, 1_000)).heads.map((head) => head.id)).toContain(named.id);

    // The place freed once closing is not used for it: it stays unsent and due.
    await handed[0]!.finish();
    await closed;
    expect(handed).toHaveLength(1);
    expect(await getDelivery(db, named.id)).toMatchObject({ state: 'pending', lease: null });
  });
});

describe('BullMQ worker send slots', () => {
  it('gives back the lease of a delivery that waited too long for a slot, queues it again, and sends it under a new lease', { timeout: 10_000 }, async () => {
    const prefix = uniquePrefix();
    const clock = { now: 0 };
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    // One slot: the second delivery, leased with the first, waits for it.
    const scheduler = startWorker(prefix, deliverer, { concurrency: 1, now: () => clock.now });
    // Registered after the worker's: the hanging attempts end before it closes.
    onTestFinished(async () => {
      await Promise.all(handed.map((entry) => entry.finish()));
    });
    const { heads } = await storeDeliveries(db, [fixture.delivery('slots:first'), fixture.delivery('slots:second')]);
    expect(heads).toHaveLength(2);
    await scheduler.schedule(heads);

    // The first is being sent and hangs; the other is leased too, waiting for the slot.
    await handedOver(1);
    const first = handed[0]!.delivery;
    const waiting = heads.find((head) => head.id !== first.id)!;
    await waitFor(async () => (await getDelivery(db, waiting.id))?.lease != null, { message: 'the second delivery was not leased' });
    const firstLease = (await getDelivery(db, waiting.id))!.lease;

    // Past a quarter of the lease, the slot frees up: too late to start an attempt under that lease.
    clock.now = LEASE_MS / 4 + 1;
    await handed[0]!.finish();
    await handedOver(2);
    const second = handed[1]!.delivery;
    expect(second.id).toBe(waiting.id);
    expect(second.lease).not.toBeNull();
    expect(second.lease).not.toBe(firstLease);
    expect(handed).toHaveLength(2);

    await handed[1]!.finish();
    expect((await getDelivery(db, waiting.id))?.state).toBe('delivered');
    expect((await getDelivery(db, first.id))?.state).toBe('delivered');
  });
});
