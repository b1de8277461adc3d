/**
 * The delivery store's lane rules against a real Postgres: only a lane's head is claimed, a finished
 * delivery names the next in its lane, and a delivery inserted while its predecessor finishes —
 * which neither statement can see — is found as a head once the insert is committed. A delivery
 * to an endpoint deleted meanwhile is left out of the insert, not an error. A lease the insert took
 * is handed over to the claim of the job that names it — once, even when the claim names the
 * delivery twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import {
  claimDeliveries,
  claimDue,
  getDelivery,
  headsAmong,
  insertDeliveries,
  postponeDelivery,
  postponeWhileDisabled,
  recordAttempts,
  releaseDeliveries,
  storeDeliveries,
  type Delivery,
} from '../../src/pipeline/webhooks/delivery-store.ts';
import { resumeLanes } from '../../src/pipeline/webhooks/endpoint-resume.ts';
import { disableEndpoint, enableEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { createDeliveryFixture, holdOpen, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const LEASE_MS = 30_000;

let fixture: DeliveryFixture;
let db: Database;
const delivery = (lane: string) => fixture.delivery(lane);

const delivered = { outcome: 'delivered' as const, status: 204, durationMs: 3, error: null, responseExcerpt: null, nextAttemptAt: null };

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

describe('webhook delivery store', () => {
  it('claims lane heads only, and a finished delivery names its lane’s next', async () => {
    const { inserted, heads } = await storeDeliveries(db, [delivery('lane-a'), delivery('lane-a'), delivery('lane-b')]);
    expect(heads).toEqual([inserted[0], inserted[2]].map((id) => ({ id, endpointId: fixture.endpointId })));

    // The second of lane-a is not claimable while the first is pending.
    expect(await claimDeliveries(db, [inserted[1]!], LEASE_MS)).toEqual([]);
    const claimed = await claimDeliveries(db, [inserted[0]!, inserted[2]!], LEASE_MS);
    expect(claimed.map((each) => each.id)).toEqual([inserted[0], inserted[2]]);
    // Leased: neither is claimed again, by id or by a look at the table.
    expect(await claimDeliveries(db, [inserted[0]!], LEASE_MS)).toEqual([]);
    expect((await claimDue(db, 10, LEASE_MS, [])).map((each) => each.id)).not.toContain(inserted[0]);

    const results = await recordAttempts(
      db,
      claimed.map((each) => ({ ...delivered, delivery: each })),
    );
    expect(results).toEqual([{ nextInLane: inserted[1] }, { nextInLane: undefined }]);
    expect((await claimDeliveries(db, [inserted[1]!], LEASE_MS)).map((each) => each.id)).toEqual([inserted[1]]);
  });

  it('lets a late holder whose lease ran out move nothing: its attempt is logged, the new holder’s record decides', async () => {
    const { inserted } = await storeDeliveries(db, [delivery('lane-fenced'), delivery('lane-fenced')]);
    // Holder A's lease has run out at once (leased into the past): holder B claims the delivery.
    const [late] = await claimDeliveries(db, [inserted[0]!], -1_000);
    const [current] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    expect(current?.lease).not.toBe(late?.lease);

    // B delivers it; the lane's next is due. A's late verdicts — a retry, a dead letter — move nothing.
    expect(await recordAttempts(db, [{ ...delivered, delivery: current! }])).toEqual([{ nextInLane: inserted[1] }]);
    const retry = { ...delivered, delivery: late!, outcome: 'failed' as const, status: 500, nextAttemptAt: new Date(Date.now() + 60_000) };
    // Finished by B: each still names the lane's next (scheduling a head twice is harmless).
    expect(await recordAttempts(db, [retry, { ...retry, nextAttemptAt: null }])).toEqual([
      { nextInLane: inserted[1], superseded: true },
      { nextInLane: inserted[1], superseded: true },
    ]);
    expect(await getDelivery(db, inserted[0]!)).toMatchObject({ state: 'delivered', attempts: 1 });
    // Every attempt is in the log; the late ones neither dead nor with a next attempt.
    const { rows } = await db.query<{ outcome: string; next: boolean }>(
      `SELECT outcome, next_attempt_at IS NOT NULL AS next FROM webhook_attempts WHERE delivery_id = $1::bigint ORDER BY id`,
      [inserted[0]],
    );
    expect(rows).toEqual([
      { outcome: 'delivered', next: false },
      { outcome: 'failed', next: false },
      { outcome: 'failed', next: false },
    ]);

    // Nor do A's postponement and release touch B's lease on the lane's next.
    const [lateNext] = await claimDeliveries(db, [inserted[1]!], -1_000);
    const [currentNext] = await claimDeliveries(db, [inserted[1]!], LEASE_MS);
    await postponeDelivery(db, lateNext!, new Date(Date.now() + 3_600_000));
    await releaseDeliveries(db, [lateNext!]);
    const { rows: held } = await db.query<{ lease: string | null; due: boolean }>(
      `SELECT leased_until::text AS lease, next_attempt_at <= now() AS due FROM webhook_deliveries WHERE id = $1::bigint`,
      [inserted[1]],
    );
    expect(held).toEqual([{ lease: currentNext!.lease, due: true }]);
    // B's own release does.
    await releaseDeliveries(db, [currentNext!]);
    expect((await getDelivery(db, inserted[1]!))?.lease).toBeNull();
  });

  it('takes no record without a lease for one of its own: on a row never recorded, it is logged and moves nothing', async () => {
    const { inserted } = await storeDeliveries(db, [delivery('lane-unleased')]);
    const unleased = await getDelivery(db, inserted[0]!);
    expect(unleased).toMatchObject({ lease: null });
    expect(await recordAttempts(db, [{ ...delivered, delivery: unleased! }])).toEqual([{ nextInLane: undefined, superseded: true }]);
    expect(await getDelivery(db, inserted[0]!)).toMatchObject({ state: 'pending', attempts: 0 });
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_attempts WHERE delivery_id = $1::bigint`, [inserted[0]]);
    expect(rows).toEqual([{ n: 1 }]);
  });

  it('keeps a pending retry at the head of its lane, and records every attempt in the batch', async () => {
    const { inserted } = await storeDeliveries(db, [delivery('lane-c'), delivery('lane-c')]);
    const [first] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    const retryAt = new Date(Date.now() + 60_000);
    const [result] = await recordAttempts(db, [{ ...delivered, delivery: first!, outcome: 'failed', status: 500, nextAttemptAt: retryAt }]);
    expect(result).toEqual({ nextInLane: undefined });
    expect(idsOf(await headsAmong(db, inserted))).toEqual([inserted[0]]);
    const { rows } = await db.query<{ attempts: number; state: string }>(`SELECT attempts, state FROM webhook_deliveries WHERE id = $1::bigint`, [inserted[0]]);
    expect(rows[0]).toEqual({ attempts: 1, state: 'pending' });
  });

  it('logs each attempt with its delivery’s endpoint, event, type, trigger and number, and answers in input order when a row is gone', async () => {
    const { inserted } = await storeDeliveries(db, [delivery('lane-g'), delivery('lane-g'), delivery('lane-h'), delivery('lane-i')]);
    const claimed = (await claimDeliveries(db, [inserted[0]!, inserted[2]!, inserted[3]!], LEASE_MS)).sort((a, b) => Number(a.id) - Number(b.id));
    expect(claimed.map((each) => each.id)).toEqual([inserted[0], inserted[2], inserted[3]]);
    // Timestamps read as numbers are the instants pg's own parsing of the column gives.
    const { rows: stamps } = await db.query<{ created_at: Date; next_attempt_at: Date; event_time: Date }>(
      'SELECT created_at, next_attempt_at, event_time FROM webhook_deliveries WHERE id = $1::bigint',
      [inserted[0]],
    );
    expect([claimed[0]!.createdAt, claimed[0]!.nextAttemptAt, claimed[0]!.eventTime]).toEqual([stamps[0]!.created_at, stamps[0]!.next_attempt_at, stamps[0]!.event_time]);
    // Its row deleted while it was attempted (its endpoint was, say): nothing follows it, nothing is logged for it.
    await db.query('DELETE FROM webhook_deliveries WHERE id = $1::bigint', [inserted[2]]);
    const results = await recordAttempts(db, [
      { ...delivered, delivery: claimed[2]!, outcome: 'failed', status: 500, responseExcerpt: 'busy', nextAttemptAt: new Date(Date.now() + 60_000) },
      { ...delivered, delivery: claimed[1]! },
      { ...delivered, delivery: claimed[0]! },
    ]);
    expect(results).toEqual([{ nextInLane: undefined }, { nextInLane: undefined }, { nextInLane: inserted[1] }]);
    const { rows } = await db.query<Record<string, unknown>>(
      `SELECT delivery_id::text, endpoint_id, event_id, event_type, trigger, attempt, outcome, status, response_excerpt
         FROM webhook_attempts WHERE delivery_id = ANY($1::bigint[]) ORDER BY id`,
      [inserted],
    );
    const logged = (index: number, fields: Record<string, unknown>) => ({
      delivery_id: inserted[index],
      endpoint_id: fixture.endpointId,
      event_id: claimed.find((each) => each.id === inserted[index])!.eventId,
      event_type: 'test.event',
      trigger: 'initial',
      attempt: 1,
      ...fields,
    });
    expect(rows).toEqual([
      logged(3, { outcome: 'failed', status: 500, response_excerpt: 'busy' }),
      logged(0, { outcome: 'delivered', status: 204, response_excerpt: null }),
    ]);
  });

  it('leases a delivery as it is stored only when it is its lane’s head; otherwise the lease goes back', async () => {
    // The event's own lane, nothing in it: leased by the insert, not scheduled as a head.
    const fresh = await storeDeliveries(db, [delivery('event:own-1')], { lease: [true], leaseMs: LEASE_MS });
    expect(idsOf(fresh.leased)).toEqual(fresh.inserted);
    expect(fresh.heads).toEqual([]);
    expect(await leaseOf(fresh.inserted[0]!)).not.toBeNull();

    // A redelivery of the event is pending in its lane: the initial delivery is stored, not leased, not a head.
    const redelivery = { ...delivery('event:own-2'), trigger: 'manual' as const };
    const [pending] = (await storeDeliveries(db, [redelivery])).inserted;
    const initial = { ...delivery('event:own-2'), eventId: redelivery.eventId };
    const behind = await storeDeliveries(db, [initial, delivery('event:own-3')], { lease: [true, true], leaseMs: LEASE_MS });
    expect(behind.inserted).toHaveLength(2);
    expect(idsOf(behind.leased)).toEqual([behind.inserted[1]]);
    expect(behind.heads).toEqual([]);
    expect(await leaseOf(behind.inserted[0]!)).toBeNull();
    // It comes after the redelivery: named as the lane's next once that one finishes.
    const [redeliveryClaimed] = await claimDeliveries(db, [pending!], LEASE_MS);
    expect(await recordAttempts(db, [{ ...delivered, delivery: redeliveryClaimed! }])).toEqual([{ nextInLane: behind.inserted[0] }]);
  });

  it('logs a lease it could not give back (the delivery not its lane’s head), and still hands over those it leased', async () => {
    const sink = captureLogs();
    const logger = createLogger({ level: 'debug', destination: sink });
    const redelivery = { ...delivery('event:own-4'), trigger: 'manual' as const };
    await storeDeliveries(db, [redelivery]);
    const initial = { ...delivery('event:own-4'), eventId: redelivery.eventId };
    // The real database, with the statement giving the stray lease back failing (the connection lost after the insert).
    const flaky: Database = {
      ...db,
      query(sql, params, options) {
        if (sql.startsWith('UPDATE webhook_deliveries d SET leased_until = NULL FROM unnest')) return Promise.reject(new Error('connection terminated unexpectedly'));
        return db.query(sql, params, options);
      },
    };
    const stored = await insertDeliveries(flaky, [initial, delivery('event:own-5')], { lease: [true, true], leaseMs: LEASE_MS, logger });
    expect(idsOf(stored.leased)).toEqual([stored.inserted[1]]);
    // Not given back: it keeps its lease until that runs out.
    expect(await leaseOf(stored.inserted[0]!)).not.toBeNull();
    const line = sink.lines.find((entry) => entry.msg === 'webhook delivery leases not given back: they run out instead');
    expect(line).toMatchObject({ level: 40, deliveries: [stored.inserted[0]], err: { message: 'connection terminated unexpectedly' } });
  });

  it('hands a lease the insert took over to a claim that names it, and to no other claim', async () => {
    // Leased by its insert for the worker of the process that stored it (BullMQ); a worker of another
    // process takes its job, which names that lease.
    const {
      leased: [stored],
    } = await storeDeliveries(db, [delivery('event:handover')], { lease: [true], leaseMs: LEASE_MS });
    const insertLease = stored!.lease!;
    expect(await claimDeliveries(db, [stored!.id], LEASE_MS)).toEqual([]);
    const otherLease = '2000-01-01 00:00:00+00';
    expect(await claimDeliveries(db, [stored!.id], LEASE_MS, [otherLease])).toEqual([]);

    const [taken] = await claimDeliveries(db, [stored!.id], LEASE_MS, [insertLease]);
    expect(taken?.id).toBe(stored!.id);
    expect(taken?.lease).not.toBe(insertLease);
    // Taken over: the lease it was handed with is gone — a second job naming it finds it held, and a
    // record under the insert's lease moves nothing.
    expect(await claimDeliveries(db, [stored!.id], LEASE_MS, [insertLease])).toEqual([]);
    await recordAttempts(db, [{ ...delivered, delivery: stored! }]);
    expect((await getDelivery(db, stored!.id))?.state).toBe('pending');
    await recordAttempts(db, [{ ...delivered, delivery: taken! }]);
    expect((await getDelivery(db, stored!.id))?.state).toBe('delivered');
  });

  it('leases a delivery named twice in one claim once: taken over when one of the two names its insert’s lease, left held when neither does', async () => {
    // The worker claims many jobs' heads in one statement, and two jobs may name one delivery: the
    // insert's, with its lease, and another naming none (a lane's next, a reconciler's).
    const { inserted, leased } = await storeDeliveries(db, [delivery('event:named-twice-1'), delivery('event:named-twice-2')], { lease: [true, true], leaseMs: LEASE_MS });
    expect(idsOf(leased)).toEqual(inserted);
    const [first, second] = leased as [Delivery, Delivery];
    expect(await claimDeliveries(db, [first.id, first.id], LEASE_MS)).toEqual([]);
    expect(await claimDeliveries(db, [first.id, first.id], LEASE_MS, [undefined, undefined])).toEqual([]);
    expect((await getDelivery(db, first.id))?.lease).toBe(first.lease);

    // The row is updated once (the claim's ids are a set of rows), under a lease of its own: the
    // name without the lease does not keep the one with it from taking the row over.
    const taken = await claimDeliveries(db, [first.id, first.id], LEASE_MS, [first.lease!, undefined]);
    expect(taken.map((each) => each.id)).toEqual([first.id]);
    expect(taken[0]!.lease).toEqual(expect.any(String));
    expect(taken[0]!.lease).not.toBe(first.lease);
    expect((await getDelivery(db, first.id))?.lease).toBe(taken[0]!.lease);
    // Whichever of the two names the lease.
    const [other, ...more] = await claimDeliveries(db, [second.id, second.id], LEASE_MS, [undefined, second.lease!]);
    expect(more).toEqual([]);
    expect(other?.id).toBe(second.id);
    expect(other?.lease).not.toBe(second.lease);

    // Taken over: a claim naming it twice again, with the insert's lease, finds it held and leaves the new lease.
    expect(await claimDeliveries(db, [first.id, first.id], LEASE_MS, [first.lease!, undefined])).toEqual([]);
    expect((await getDelivery(db, first.id))?.lease).toBe(taken[0]!.lease);
  });

  it('finds a delivery inserted while its predecessor finished as a head once the insert committed', async () => {
    const {
      inserted: [firstId],
    } = await storeDeliveries(db, [delivery('lane-d')]);
    const [first] = await claimDeliveries(db, [firstId!], LEASE_MS);

    // The insert's transaction sees the first pending: the new delivery is not a head.
    const inTransaction = await holdOpen(db, (tx) => insertDeliveries(tx, [delivery('lane-d')]));
    const secondId = inTransaction.result.inserted[0]!;
    expect(inTransaction.result.heads).toEqual([]);
    // The first finishes meanwhile: the insert holds the lane's head (migration 0024), so the finish
    // waits for it, and names no next — the statement read the lane before the second committed.
    const finishing = recordAttempts(db, [{ ...delivered, delivery: first! }]);
    await waitFor(async () => (await rowLockWaiters()) > 0);
    await inTransaction.commit();
    expect(await finishing).toEqual([{ nextInLane: undefined }]);

    // Nobody named it; looking again after the commit does.
    expect(idsOf(await headsAmong(db, [secondId]))).toEqual([secondId]);
  });

  it('waits for a predecessor’s finish still in progress before saying whether a delivery is a head', async () => {
    const { inserted } = await storeDeliveries(db, [delivery('lane-e'), delivery('lane-e')]);
    const [first] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    // The first's finish is written but not committed when the second is looked at.
    const finishing = await holdOpen(db, (tx) => recordAttempts(tx, [{ ...delivered, delivery: first! }]));
    const looked = headsAmong(db, [inserted[1]!]);
    // It waits on the row lock of the first's finish (the commit comes only once it does).
    await waitFor(async () => (await rowLockWaiters()) > 0);
    await finishing.commit();
    expect(idsOf(await looked)).toEqual([inserted[1]]);
  });

  it('leaves no delivery waiting an hour for an endpoint enabled while the delivery was put back', async () => {
    const endpointId = await fixture.endpoint('enabled while a delivery is put back');
    await disableEndpoint(db, endpointId, 'down for a while');
    const { inserted } = await storeDeliveries(db, [{ ...delivery('lane-h'), endpointId }]);
    const [held] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    // A worker found the endpoint disabled and puts the delivery back for an hour: written, not committed yet.
    const putting = await holdOpen(db, (tx) => postponeWhileDisabled(tx, [{ id: held!.id, lease: held!.lease, dueAt: new Date(Date.now() + 3_600_000) }]));
    // Meanwhile an admin enables the endpoint, which makes its deliveries due now (as the admin API does).
    let enabled = false;
    const resumed = enableEndpoint(db, endpointId).then(() => {
      enabled = true;
      return resumeLanes(db, endpointId, '', 1_000);
    });
    // The enable is either done, or waits for the put-back's statement (its share lock on the endpoint).
    await waitFor(async () => enabled || (await rowLockWaiters()) > 0);
    await putting.commit();
    await resumed;
    expect((await getDelivery(db, held!.id))!.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('makes due a page of lanes at a time, only heads due later, however long a lane; nothing while the endpoint is disabled', async () => {
    const endpointId = await fixture.endpoint('resumed a page at a time');
    const lane = (name: string) => ({ ...delivery(name), endpointId });
    // r-long's head and four behind it (waiting for their head, not due later: only a head is ever
    // postponed; migration 0024); r-due's head is due.
    const { inserted } = await storeDeliveries(db, [lane('r-long'), lane('r-a'), lane('r-long'), lane('r-b'), lane('r-c'), lane('r-due'), lane('r-long'), lane('r-long'), lane('r-long')]);
    const [long, a, , b, c] = inserted;
    const waiting = [long!, a!, b!, c!];
    await db.query(`UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY($1::bigint[])`, [waiting]);
    const dueLater = async () =>
      (await db.query<{ id: string }>(`SELECT id::text AS id FROM webhook_deliveries WHERE endpoint_id = $1 AND next_attempt_at > now() AND next_attempt_at < 'infinity' ORDER BY id`, [endpointId])).rows.map((row) => row.id);
    const headIds = (page: { heads: readonly { id: string }[] }) => page.heads.map((head) => head.id);

    await disableEndpoint(db, endpointId, 'down for a while');
    expect(await resumeLanes(db, endpointId, '', 2)).toEqual({ heads: [], next: undefined });
    expect(await dueLater()).toEqual(waiting);

    await enableEndpoint(db, endpointId);
    // In the lane index's order, two lanes a page; r-due's head needed nothing.
    const first = await resumeLanes(db, endpointId, '', 2);
    expect(first).toMatchObject({ next: 'r-b' });
    expect(headIds(first)).toEqual([a, b]);
    const second = await resumeLanes(db, endpointId, first.next!, 2);
    expect(second).toMatchObject({ next: 'r-due' });
    expect(headIds(second)).toEqual([c]);
    const last = await resumeLanes(db, endpointId, second.next!, 2);
    expect(last).toEqual({ heads: [{ id: long, endpointId }], next: undefined });
    expect(await dueLater()).toEqual([]);
  });

  it('leaves out a delivery to an endpoint deleted meanwhile and stores the others of the same statement', async () => {
    const gone = await fixture.endpoint('deleted');
    await db.query('DELETE FROM webhook_endpoints WHERE id = $1', [gone]);
    // A process whose endpoint cache still holds it routes an event to it and to a live endpoint.
    const stored = await insertDeliveries(db, [{ ...delivery('lane-f'), endpointId: gone }, delivery('lane-f')]);
    expect(stored.inserted).toHaveLength(1);
    expect(stored.heads).toEqual([{ id: stored.inserted[0], endpointId: fixture.endpointId }]);
  });

  it('waits for a delete of the endpoint still in progress, then leaves its delivery out', async () => {
    const gone = await fixture.endpoint('being deleted');
    const deleting = await holdOpen(db, (tx) => tx.query('DELETE FROM webhook_endpoints WHERE id = $1', [gone]));
    const storing = insertDeliveries(db, [delivery('lane-g'), { ...delivery('lane-g'), endpointId: gone }]);
    // It waits on the endpoint row the delete holds (the commit comes only once it does).
    await waitFor(async () => (await rowLockWaiters()) > 0);
    await deleting.commit();
    const stored = await storing;
    expect(stored.inserted).toHaveLength(1);
    const { rows } = await db.query<{ endpoint_id: string }>('SELECT endpoint_id FROM webhook_deliveries WHERE id = $1::bigint', [stored.inserted[0]]);
    expect(rows).toEqual([{ endpoint_id: fixture.endpointId }]);
  });
});

const idsOf = (heads: readonly { id: string }[]) => heads.map((head) => head.id);

/** Statements of this database waiting for a row lock (a row lock's waiter waits on the holder's transaction id). */
async function rowLockWaiters(): Promise<number> {
  const { rows } = await db.query<{ waiting: number }>(`SELECT count(*)::int AS waiting FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'
       AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`);
  return rows[0]!.waiting;
}

async function leaseOf(id: string): Promise<Date | null> {
  const { rows } = await db.query<{ leased_until: Date | null }>('SELECT leased_until FROM webhook_deliveries WHERE id = $1::bigint', [id]);
  return rows[0]!.leased_until;
}

