/**
 * The embedded delivery loop against a real Postgres, with a deliverer that only records what it is
 * handed (a pure fake: the HTTP side is tested in webhooks.test.ts). The loop's periodic look at the
 * table is set far beyond the test's timeout, so every delivery here must start from a wake-up:
 * a scheduled lane head, or a slot freed by an attempt whose HTTP part is over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createLocalWake, type LocalWake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { startEmbeddedDelivery } from '../../src/pipeline/webhooks/embedded-delivery.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { recordingDeliverer } from '../helpers/recording-deliverer.ts';

const logger = createLogger({ level: 'silent' });
/** Longer than any test here may take: no delivery may wait for the loop's periodic look. */
const NEVER_MS = 600_000;

let fixture: DeliveryFixture;
let db: Database;
const newDelivery = (lane: string) => fixture.delivery(lane);

/** The loop's wake, telling the test when the loop starts waiting. */
function watchedWake() {
  const wake = createLocalWake();
  let onWait: () => void = () => {};
  const watched: LocalWake = {
    ...wake,
    wait(ms, signal) {
      onWait();
      return wake.wait(ms, signal);
    },
  };
  /** Resolves at the loop's next wait. */
  const waiting = () => new Promise<void>((resolve) => (onWait = resolve));
  return { wake: watched, waiting };
}

/** Earlier tests leave deliveries pending (released, not sent): dead-lettered, so a new loop's first look finds none. */
async function settleEarlierDeliveries(): Promise<void> {
  await db.query(`UPDATE webhook_deliveries SET state = 'dead', finished_at = now(), leased_until = NULL WHERE state = 'pending'`);
}

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

describe('embedded delivery loop', () => {
  it('attempts a scheduled lane head at once, and the lane’s next when the first is recorded', async () => {
    const { wake, waiting } = watchedWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 4, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 10, logger });
    // Stored and scheduled once the loop has looked at the (empty) table and waits: the wake-up is
    // all it gets, so the head it claims must start without another.
    await waiting();
    const { inserted, heads } = await storeDeliveries(db, [newDelivery('lane-a'), newDelivery('lane-a')]);
    try {
      await wake.schedule(heads);
      await handedOver(1);
      expect(handed.map((entry) => entry.delivery.id)).toEqual([inserted[0]]);
      await handed[0]!.finish();
      await handedOver(2);
      expect(handed.map((entry) => entry.delivery.id)).toEqual(inserted);
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
    expect((await getDelivery(db, inserted[1]!))?.state).toBe('delivered');
  });

  it('gives a slot to the next delivery when an attempt’s POST is over, before it is recorded', async () => {
    const wake = createLocalWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const { heads } = await storeDeliveries(db, [newDelivery('lane-b'), newDelivery('lane-c'), newDelivery('lane-d')]);
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 2, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 10, logger });
    try {
      await wake.schedule(heads);
      await handedOver(2);
      expect(handed).toHaveLength(2);
      handed[0]!.send();
      await handedOver(3);
      expect(handed.map((entry) => entry.delivery.id).sort()).toEqual(heads.map((head) => head.id).sort());
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
  });

  it('holds each endpoint to its maxConcurrency, and still finds every due delivery of a busy endpoint without the periodic look', async () => {
    const { wake } = watchedWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const lanes = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
    const { heads } = await storeDeliveries(db, lanes.map((lane) => newDelivery(lane)));
    // Stored before the start: only the loop's first look at the table finds them, four at most at once.
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 4, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 1, logger });
    try {
      for (let count = 1; count <= lanes.length; count += 1) {
        await handedOver(count);
        // One at a time: the endpoint's maximum, though the loop has four slots.
        expect(handed.filter((entry) => !entry.finished())).toHaveLength(1);
        await handed[count - 1]!.finish();
      }
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
    expect(handed.map((entry) => entry.delivery.id).sort()).toEqual(heads.map((head) => head.id).sort());
  });

  it('claims another endpoint’s delivery while a slot is free, however many deliveries of endpoints at their maximum wait', async () => {
    await settleEarlierDeliveries();
    const slow = await Promise.all(['s1', 's2', 's3'].map((name) => fixture.endpoint(name)));
    const { wake, waiting } = watchedWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    // Three endpoints that take one attempt at a time, two deliveries each: three sent, three waiting
    // in the loop's ready queue for their endpoint — three of its four places.
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 4, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: (id) => (slow.includes(id) ? 1 : 10), logger });
    try {
      await waiting();
      const { heads } = await storeDeliveries(db, slow.flatMap((endpointId, index) => [`slow-${index}-a`, `slow-${index}-b`].map((lane) => ({ ...newDelivery(lane), endpointId }))));
      await wake.schedule(heads);
      await handedOver(3);
      expect(new Set(handed.map((entry) => entry.delivery.endpointId))).toEqual(new Set(slow));
      // The fourth slot is free: a delivery to the fixture's endpoint (a lane of an entity, so it
      // comes by a claim, not from the tap) is sent while the slow ones still hold theirs.
      const fast = await storeDeliveries(db, [newDelivery('fast-entity')]);
      await wake.schedule(fast.heads);
      await handedOver(4);
      expect(handed[3]!.delivery.id).toBe(fast.inserted[0]);
      expect(handed.slice(0, 3).every((entry) => !entry.finished())).toBe(true);
    } finally {
      // Closed first: the slow endpoints' second deliveries are not started when their first finish.
      const closed = worker.close();
      await Promise.all(handed.map((entry) => entry.finish()));
      await closed;
      // Those second deliveries are left pending: settled, so the next test's loop does not find them.
      await settleEarlierDeliveries();
    }
  });

  it('releases the leases of deliveries claimed but not started when it closes', async () => {
    const wake = createLocalWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const { heads } = await storeDeliveries(db, [newDelivery('lane-e'), newDelivery('lane-f'), newDelivery('lane-g')]);
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 1, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 10, logger });
    await wake.schedule(heads);
    await handedOver(1);
    const closed = worker.close();
    await handed[0]!.finish();
    await closed;
    const { rows } = await db.query<{ id: string; leased: boolean }>(
      `SELECT id::text AS id, leased_until IS NOT NULL AS leased FROM webhook_deliveries WHERE id = ANY($1::bigint[]) AND state = 'pending' ORDER BY id`,
      [heads.map((head) => head.id)],
    );
    expect(rows).toEqual(heads.slice(1).map(({ id }) => ({ id, leased: false })));
  });

  it('takes new deliveries straight from the routing tap, leased by their insert, within its slots and each endpoint’s share', async () => {
    await settleEarlierDeliveries();
    const { wake, waiting } = watchedWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    // maxConcurrency 1: the endpoint's share here is 2 (one sending, one ready).
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 4, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 1, logger });
    await waiting();
    const intake = wake.intake();
    expect(intake?.leaseMs).toBe(30_000);
    expect(intake!.reserve(fixture.endpointId, 3)).toBe(2);
    const deliveries = [newDelivery('event:own-1'), newDelivery('event:own-2'), newDelivery('event:own-3')];
    const stored = await storeDeliveries(db, deliveries, { lease: [true, true, false], leaseMs: intake!.leaseMs });
    try {
      expect(stored.leased.map((delivery) => delivery.eventId)).toEqual(deliveries.slice(0, 2).map((delivery) => delivery.eventId));
      expect(stored.heads.map((head) => head.id)).toEqual([stored.inserted[2]]);
      const { rows } = await db.query<{ leased: boolean }>(`SELECT leased_until IS NOT NULL AS leased FROM webhook_deliveries WHERE id = ANY($1::bigint[]) ORDER BY id`, [stored.inserted]);
      expect(rows.map((row) => row.leased)).toEqual([true, true, false]);

      // Handed over: the first starts at once, with no claim and no wake-up; the second waits for the endpoint.
      intake!.start(stored.leased);
      expect(handed.map((entry) => entry.delivery.id)).toEqual([stored.inserted[0]]);
      await wake.schedule(stored.heads);
      await handed[0]!.finish();
      await handedOver(2);
      expect(handed[1]!.delivery.id).toBe(stored.inserted[1]);
      // The third took no place at the insert: it is claimed once the endpoint has room again.
      await handed[1]!.finish();
      await handedOver(3);
      expect(handed[2]!.delivery.id).toBe(stored.inserted[2]);
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
    expect(wake.intake()).toBeUndefined();
    expect(await Promise.all(stored.inserted.map(async (id) => (await getDelivery(db, id))?.state))).toEqual(['delivered', 'delivered', 'delivered']);
  });

  it('stores a delivery unleased when its lane has one pending before it, and gives back places it did not use', async () => {
    await settleEarlierDeliveries();
    const { wake, waiting } = watchedWake();
    const { deliverer, handed } = recordingDeliverer(db);
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 1, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 10, logger });
    await waiting();
    // A redelivery of the event, pending in its own lane.
    const first = newDelivery('event:own-4');
    await storeDeliveries(db, [{ ...first, trigger: 'replay' }]);
    const intake = wake.intake()!;
    expect(intake.reserve(fixture.endpointId, 1)).toBe(1);
    // The loop's one slot is reserved: a second reservation gets none.
    expect(intake.reserve(fixture.endpointId, 1)).toBe(0);
    const stored = await storeDeliveries(db, [first], { lease: [true], leaseMs: intake.leaseMs });
    expect(stored).toMatchObject({ leased: [], heads: [] });
    expect(stored.inserted).toHaveLength(1);
    intake.release(fixture.endpointId, 1);
    expect(intake.reserve(fixture.endpointId, 1)).toBe(1);
    intake.release(fixture.endpointId, 1);
    await worker.close();
    expect(intake.reserve(fixture.endpointId, 1)).toBe(0);
    expect(handed).toEqual([]);
  });

  it('leaves room for what a claim under way brings: the tap reserves only what is left', async () => {
    await settleEarlierDeliveries();
    // The real database, with the claim by id held at the door until the test lets it through.
    let claimSent: () => void = () => {};
    const sent = new Promise<void>((resolve) => (claimSent = resolve));
    let letThrough: () => void = () => {};
    const gate = new Promise<void>((resolve) => (letThrough = resolve));
    const held: Database = {
      ...db,
      async query(sql, params, options) {
        if (options?.prepareAs === 'tributary_webhook_claim_ids') {
          claimSent();
          await gate;
        }
        return db.query(sql, params, options);
      },
    };
    const { wake, waiting } = watchedWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const worker = startEmbeddedDelivery({ db: held, deliverer, wake, concurrency: 2, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 10, logger });
    try {
      await waiting();
      const { heads } = await storeDeliveries(db, [newDelivery('event:own-5'), newDelivery('event:own-6')]);
      await wake.schedule(heads);
      await sent;
      // Both slots are the claim's: nothing is left to reserve until it is over.
      expect(wake.intake()!.reserve(fixture.endpointId, 2)).toBe(0);
      letThrough();
      await handedOver(2);
      expect(handed.map((entry) => entry.delivery.id).sort()).toEqual(heads.map((head) => head.id).sort());
    } finally {
      letThrough();
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
  });

  it('keeps the deliveries it leased by id when the look at the table that follows fails', async () => {
    await settleEarlierDeliveries();
    // The real database, with the loop's first look at the table failing once (Postgres gone for a moment).
    let failLook = true;
    const flaky: Database = {
      ...db,
      query(sql, params, options) {
        if (options?.prepareAs === 'tributary_webhook_claim_due' && failLook) {
          failLook = false;
          return Promise.reject(new Error('connection terminated'));
        }
        return db.query(sql, params, options);
      },
    };
    const wake = createLocalWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const { heads } = await storeDeliveries(db, [newDelivery('flaky-1')]);
    // Scheduled before the start: the first claim takes it by id, then looks at the table (the
    // loop's first look) — and that fails. Leased for longer than the test may take: it must be
    // sent from this lease, and its endpoint keep its places (one at a time, two admitted).
    await wake.schedule(heads);
    const worker = startEmbeddedDelivery({ db: flaky, deliverer, wake, concurrency: 4, leaseMs: NEVER_MS, idleMs: NEVER_MS, maxConcurrencyOf: () => 1, logger });
    try {
      await handedOver(1);
      expect(failLook).toBe(false);
      expect(handed[0]!.delivery.id).toBe(heads[0]!.id);
      await handed[0]!.finish();
      // The endpoint's places all came back: two more, one after the other.
      const more = await storeDeliveries(db, [newDelivery('flaky-2'), newDelivery('flaky-3')]);
      await wake.schedule(more.heads);
      await handedOver(2);
      await handed[1]!.finish();
      await handedOver(3);
      expect(handed.slice(1).map((entry) => entry.delivery.id).sort()).toEqual(more.heads.map((head) => head.id).sort());
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
  });

  it('gives back the lease of a ready delivery that waited past a share of it for a slot, and sends it under a new one', async () => {
    await settleEarlierDeliveries();
    const wake = createLocalWake();
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    // The loop's clock, moved by the test: how long the second delivery waits is the test's to say.
    let clock = 0;
    const leaseMs = 30_000;
    const endpointId = await fixture.endpoint('one at a time');
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 4, leaseMs, idleMs: NEVER_MS, maxConcurrencyOf: () => 1, logger, now: () => clock });
    const { heads } = await storeDeliveries(db, [{ ...newDelivery('lane-slow-1'), endpointId }, { ...newDelivery('lane-slow-2'), endpointId }]);
    try {
      await wake.schedule(heads);
      await handedOver(1);
      const waiting = heads.find((head) => head.id !== handed[0]!.delivery.id)!;
      // Leased and ready, held back by its endpoint's maximum of one attempt at a time.
      const leaseOf = async () => (await db.query<{ lease: string | null }>('SELECT leased_until::text AS lease FROM webhook_deliveries WHERE id = $1::bigint', [waiting.id])).rows[0]!.lease;
      const firstLease = await leaseOf();
      expect(firstLease).not.toBeNull();
      // It has waited for half its lease when the slot frees: too late to start under that lease.
      clock += leaseMs / 2;
      await handed[0]!.finish();
      await handedOver(2);
      expect(handed[1]!.delivery.id).toBe(waiting.id);
      expect(handed[1]!.delivery.lease).not.toBe(firstLease);
    } finally {
      await Promise.all(handed.map((entry) => entry.finish()));
      await worker.close();
    }
  });
});
