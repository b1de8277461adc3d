/**
 * An initial delivery on its event's own lane (`event:` + its event id: an event without an entity)
 * shares the lane only with replays, redeliveries and tests of the same event to the same endpoint,
 * and the delivery statements read those through the event index, not the lane index
 * (migrations/0039). The lane rules are the same as on any lane: a redelivery stored before the
 * initial delivery goes first; one stored after it waits for it and is named as the lane's next
 * when it finishes — never another endpoint's, nor a finished one. And those reads never touch the
 * lane index, also with plans made on an empty table and a backlog of admin-made deliveries since;
 * nor does a claim by id or a record walk the lane index's pending deliveries to find its ids.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { claimDeliveries, claimDue, insertDeliveries, recordAttempts, storeDeliveries, type Delivery, type NewDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { databaseOn, explainingClient } from '../helpers/single-connection.ts';

const LEASE_MS = 30_000;

let fixture: DeliveryFixture;
let db: Database;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

const delivered = (delivery: Delivery) => ({ delivery, outcome: 'delivered' as const, status: 204, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null });

/** A new event's initial delivery to `endpointId` (the fixture's by default), on the event's own lane. */
function ownLane(endpointId = fixture.endpointId): NewDelivery {
  const delivery = fixture.delivery('');
  return { ...delivery, endpointId, lane: `event:${delivery.eventId}` };
}

/** Another delivery of the same event to the same endpoint (a redelivery, a replay). */
const again = (delivery: NewDelivery, trigger: 'manual' | 'replay' = 'manual'): NewDelivery => ({ ...delivery, trigger });

async function leasedIds(deliveries: Promise<Delivery[]>): Promise<string[]> {
  return (await deliveries).map((delivery) => delivery.id);
}

describe('an initial delivery on its event’s own lane', () => {
  it('waits behind a redelivery of its event stored before it: no head when stored, claimed neither by id nor by a look, named once that finishes', async () => {
    const initial = ownLane();
    const [first] = (await storeDeliveries(db, [again(initial)])).inserted;
    const stored = await storeDeliveries(db, [initial], { lease: [true], leaseMs: LEASE_MS });
    const [behind] = stored.inserted;
    expect(stored.heads).toEqual([]);
    expect(stored.leased).toEqual([]);

    expect(await leasedIds(claimDeliveries(db, [behind!], LEASE_MS))).toEqual([]);
    const looked = await claimDue(db, 100, LEASE_MS, []);
    expect(looked.map((delivery) => delivery.id)).toContain(first);
    expect(looked.map((delivery) => delivery.id)).not.toContain(behind);

    const redelivery = looked.find((delivery) => delivery.id === first)!;
    expect(await recordAttempts(db, [delivered(redelivery)])).toEqual([{ nextInLane: behind }]);
    expect(await leasedIds(claimDeliveries(db, [behind!], LEASE_MS))).toEqual([behind]);
  });

  it('names the redelivery of its event to its endpoint that waits behind it as its lane’s next — not another endpoint’s, nor a finished one', async () => {
    const other = await fixture.endpoint('other');
    const initial = ownLane();
    const stored = await storeDeliveries(db, [initial], { lease: [true], leaseMs: LEASE_MS });
    const [head] = stored.leased;
    expect(head?.id).toBe(stored.inserted[0]);

    // The same event to another endpoint (its own lane there, its own head), then a replay to this
    // endpoint that is already finished, then the redelivery that waits.
    const elsewhere = await storeDeliveries(db, [{ ...initial, endpointId: other }]);
    expect(elsewhere.heads).toEqual([{ id: elsewhere.inserted[0], endpointId: other }]);
    const replay = await storeDeliveries(db, [again(initial, 'replay')]);
    expect(replay.heads).toEqual([]);
    const [waiting] = (await storeDeliveries(db, [again(initial)])).inserted;
    await db.query(`UPDATE webhook_deliveries SET state = 'dead', finished_at = now() WHERE id = $1::bigint`, [replay.inserted[0]]);
    expect(await leasedIds(claimDeliveries(db, [waiting!], LEASE_MS))).toEqual([]);

    expect(await recordAttempts(db, [delivered(head!)])).toEqual([{ nextInLane: waiting }]);
    expect(await leasedIds(claimDeliveries(db, [waiting!], LEASE_MS))).toEqual([waiting]);
  });

  it('is its lane’s head when its event’s other deliveries are to other endpoints or finished', async () => {
    const other = await fixture.endpoint('another');
    const initial = ownLane();
    const [finished] = (await storeDeliveries(db, [again(initial, 'replay')])).inserted;
    await db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE id = $1::bigint`, [finished]);
    await storeDeliveries(db, [again({ ...initial, endpointId: other })]);

    const stored = await storeDeliveries(db, [initial]);
    expect(stored.heads).toEqual([{ id: stored.inserted[0], endpointId: fixture.endpointId }]);
    const [claimed] = await claimDeliveries(db, stored.inserted, LEASE_MS);
    expect(await recordAttempts(db, [delivered(claimed!)])).toEqual([{ nextInLane: undefined }]);
  });
});

describe('the own-lane probes', () => {
  let own: DeliveryFixture;
  let client: pg.Client;
  const plans: string[] = [];

  beforeAll(async () => {
    own = await createDeliveryFixture();
    client = await explainingClient(own.url, plans);
    await client.query('SET auto_explain.log_analyze = on');
  });

  afterAll(async () => {
    await client?.end();
    await own?.dispose();
  });

  it('read the event index only, and the ids are looked up by key, with plans made on an empty table and a backlog of admin-made deliveries since', async () => {
    const connection = databaseOn(client);
    const initial = (): NewDelivery => {
      const delivery = own.delivery('');
      return { ...delivery, lane: `event:${delivery.eventId}` };
    };
    // Every statement runs once on the empty table: this connection plans them now.
    const [planned] = (await insertDeliveries(connection, [initial()], { lease: [true], leaseMs: LEASE_MS })).leased;
    await recordAttempts(connection, [delivered(planned!)]);
    await claimDeliveries(connection, ['1'], LEASE_MS);
    await claimDue(connection, 10, LEASE_MS, []);

    // A backlog stored by another connection: routed deliveries, and 2,000 pending replays of
    // other events (what the admin-pending and endpoint indexes would hand a probe to walk).
    await insertDeliveries(own.db, Array.from({ length: 1_000 }, () => initial()));
    await insertDeliveries(own.db, Array.from({ length: 2_000 }, () => ({ ...initial(), trigger: 'replay' as const })));
    plans.splice(0);

    const stored = await insertDeliveries(connection, [initial()]);
    expect(stored.heads).toHaveLength(1);
    const [byId] = await claimDeliveries(connection, stored.inserted, LEASE_MS);
    const looked = await claimDue(connection, 5, LEASE_MS, []);
    expect(looked).toHaveLength(5);
    const next = await recordAttempts(connection, [byId!, ...looked].map(delivered));
    expect(next).toEqual(Array.from({ length: 6 }, () => ({ nextInLane: undefined })));

    const ran = plans.splice(0).filter((plan) => plan.includes('webhook_deliveries') && !plan.includes('FROM tributary_webhook_'));
    // The insert, the claim by id, the look and the record.
    expect(ran).toHaveLength(4);
    for (const plan of ran) {
      expect(plan).toMatch(/Index Scan using webhook_deliveries_event_idx on webhook_deliveries e .*\(actual time=[^)]*loops=[1-9]/);
      // The lane index is in each plan for the other lanes, and was not read: neither probed nor
      // walked for the rows a statement names by id (a plan made on the empty table had done that).
      for (const line of plan.split('\n').filter((each) => each.includes('webhook_deliveries_lane_idx'))) expect(line).toContain('never executed');
      expect(plan).not.toMatch(/webhook_deliveries_(admin_pending|endpoint)_idx|Seq Scan on webhook_deliveries|Bitmap/);
      for (const scan of plan.matchAll(/Index Scan using webhook_deliveries_pkey[^\n]*\n[^\n]*/g)) expect(scan[0]).toContain('Index Cond');
    }
  });
});
