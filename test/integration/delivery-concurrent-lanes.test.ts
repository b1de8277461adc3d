/**
 * Deliveries stored in one entity's lane by two transactions at once — two instances routing one
 * entity's events — leave the lane one head, first in it by id (migrations/0040): a routing waits
 * for another routing of the same endpoint to commit, then stores its delivery behind the other's;
 * a delivery's id is drawn after its look at the lane, so one that waits is never first in it by id
 * (which sent it beside the head it waited for, or, its scheduling lost, left the lane stuck).
 * Routings of other endpoints, and events without an entity, wait for nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { claimDeliveries, getDelivery, insertDeliveries, recordAttempts, type Delivery, type NewDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture, holdOpen, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

const LEASE_MS = 30_000;

let fixture: DeliveryFixture;
let db: Database;
let lanes = 0;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

/** A lane no other test uses. */
const newLane = () => `order:${(lanes += 1)}`;

/** Statements of other connections waiting for a lock (the inserts this file holds up). */
async function waitingForALock(): Promise<number> {
  const { rows } = await db.query<{ waiting: number }>(
    `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
  );
  return rows[0]?.waiting ?? 0;
}

/** `work`'s promise, and whether it has settled (resolved or rejected) yet. */
function watched<T>(work: Promise<T>): { readonly promise: Promise<T>; settled(): boolean } {
  let settled = false;
  const promise = work.finally(() => (settled = true));
  // Awaited by the test; this only keeps an early rejection from going unhandled meanwhile.
  promise.catch(() => undefined);
  return { promise, settled: () => settled };
}

const delivered = (delivery: Delivery) => ({ delivery, outcome: 'delivered' as const, status: 204, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null });

describe('two routings of one entity at once', () => {
  it('the second waits for the first to commit, then stores its delivery behind the first: one head, sent in order', async () => {
    const lane = newLane();
    const first = await holdOpen(db, (tx) => insertDeliveries(tx, [fixture.delivery(lane)]));
    expect(first.result.heads).toHaveLength(1);
    const [firstId] = first.result.inserted;

    // Before 0040 this insert did not see the first (not committed) and stored a second head.
    const second = watched(insertDeliveries(db, [fixture.delivery(lane)]));
    try {
      await waitFor(async () => second.settled() || (await waitingForALock()) > 0);
      expect(second.settled()).toBe(false);
    } finally {
      await first.commit();
    }
    const stored = await second.promise;
    const [secondId] = stored.inserted;

    expect(stored.heads).toEqual([]);
    expect(Number(secondId)).toBeGreaterThan(Number(firstId));
    expect((await getDelivery(db, secondId!))?.nextAttemptAt).toBeNull();
    expect(await claimDeliveries(db, [secondId!], LEASE_MS)).toEqual([]);

    const [head] = await claimDeliveries(db, [firstId!], LEASE_MS);
    expect(head?.id).toBe(firstId);
    expect(await recordAttempts(db, [delivered(head!)])).toEqual([{ nextInLane: secondId }]);
    expect((await claimDeliveries(db, [secondId!], LEASE_MS)).map((delivery) => delivery.id)).toEqual([secondId]);
  });

  it('a delivery that drew its id before the lane’s head committed is stored behind it with a larger id, and goes after it', async () => {
    const lane = newLane();
    // Holds an insert of an event `paused-…` after its row's defaults (its id among them) were
    // drawn and before the follower trigger runs (BEFORE triggers fire in name order).
    await db.exec(`
      CREATE FUNCTION test_pause_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF starts_with(NEW.event_id, 'paused-') THEN PERFORM pg_advisory_xact_lock(40400); END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER webhook_deliveries_a_pause BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION test_pause_insert();`);
    try {
      const pause = await holdOpen(db, (tx) => tx.query('SELECT pg_advisory_xact_lock(40400)'));
      const late = watched(insertDeliveries(db, [{ ...fixture.delivery(lane), eventId: `paused-${lane}` }]));
      let headId: string | undefined;
      try {
        await waitFor(async () => late.settled() || (await waitingForALock()) > 0);
        expect(late.settled()).toBe(false);
        // Another routing stores the lane's head and commits meanwhile.
        const early = await insertDeliveries(db, [fixture.delivery(lane)]);
        [headId] = early.inserted;
        expect(early.heads.map((head) => head.id)).toEqual([headId]);
      } finally {
        await pause.commit();
      }
      const [lateId] = (await late.promise).inserted;
      // Before 0040 the waiting delivery kept its earlier id: first in the lane though not due, and
      // the head behind it not claimable.
      expect(Number(lateId)).toBeGreaterThan(Number(headId));
      const [head] = await claimDeliveries(db, [headId!], LEASE_MS);
      expect(head?.id).toBe(headId);
      expect(await recordAttempts(db, [delivered(head!)])).toEqual([{ nextInLane: lateId }]);
      expect((await claimDeliveries(db, [lateId!], LEASE_MS)).map((delivery) => delivery.id)).toEqual([lateId]);
    } finally {
      await db.exec('DROP TRIGGER webhook_deliveries_a_pause ON webhook_deliveries; DROP FUNCTION test_pause_insert()');
    }
  });

  it('many routings of one lane at once leave it one head, first by id, and every other delivery waiting', async () => {
    for (let round = 0; round < 20; round += 1) {
      const lane = newLane();
      const stored = await Promise.all(Array.from({ length: 4 }, () => insertDeliveries(db, [fixture.delivery(lane)])));
      const { rows } = await db.query<{ id: string; due: boolean }>(
        `SELECT id::text, next_attempt_at < 'infinity' AS due FROM webhook_deliveries WHERE endpoint_id = $1 AND lane = $2 ORDER BY webhook_deliveries.id`,
        [fixture.endpointId, lane],
      );
      expect(rows.map((row) => row.due)).toEqual([true, false, false, false]);
      expect(stored.flatMap((one) => one.heads.map((head) => head.id))).toEqual([rows[0]!.id]);
    }
  });
});

describe('what a routing does not wait for', () => {
  it('another endpoint’s routing of the same entity, and an event without an entity to the same endpoint', async () => {
    const other = await fixture.endpoint('other');
    const lane = newLane();
    const held = await holdOpen(db, (tx) => insertDeliveries(tx, [fixture.delivery(lane)]));
    try {
      const elsewhere: NewDelivery = { ...fixture.delivery(lane), endpointId: other };
      expect((await insertDeliveries(db, [elsewhere])).heads).toHaveLength(1);
      const own = fixture.delivery('');
      expect((await insertDeliveries(db, [{ ...own, lane: `event:${own.eventId}` }])).heads).toHaveLength(1);
    } finally {
      await held.commit();
    }
  });
});
