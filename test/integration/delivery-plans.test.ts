/**
 * The delivery statements are planned once per connection and their plans kept (migrations/0012).
 * Plans a connection makes while webhook_deliveries is empty — where every way of reading it costs
 * about the same — must still read lanes through the lane index once the table holds a backlog: a
 * full scan of the due index or of the primary key per probe costs the whole backlog each time.
 * The plans are read as they run: auto_explain on this test's own connection, sent to it as notices.
 *
 * The table is analyzed often, from a small sample (migrations/0013): no column may bring the
 * sample back to ANALYZE's default of 30,000 rows.
 *
 * The embedded loop's look for due deliveries is planned once per connection too (migrations/0018),
 * and its plan, made on an empty table, must walk the due index in order and stop at the limit.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { storeAdminDeliveries } from '../../src/pipeline/webhooks/admin-deliveries.ts';
import { claimDeliveries, claimDue, insertDeliveries, recordAttempts, type Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { databaseOn, explainingClient } from '../helpers/single-connection.ts';

const LEASE_MS = 30_000;
const BACKLOG = 2_000;

let fixture: DeliveryFixture;
let client: pg.Client;
/** The plans auto_explain sent since the last `take`. */
const plans: string[] = [];
const take = () => plans.splice(0);

/** This test's one connection, as the delivery store's functions take it. */
let connection: Database;

const delivered = (delivery: Delivery) => ({ delivery, outcome: 'delivered' as const, status: 204, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null });

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  client = await explainingClient(fixture.url, plans);
  connection = databaseOn(client);
});

afterAll(async () => {
  await client?.end();
  await fixture?.dispose();
});

/** The plans of the statements inside the delivery functions (not the calls to them). */
const inner = (found: readonly string[]) => found.filter((plan) => plan.includes('webhook_deliveries') && !plan.includes('FROM tributary_webhook_'));

describe('webhook delivery plans', () => {
  it('plans made on an empty table still probe lanes through the lane index with a backlog', async () => {
    // Every statement runs once on the empty table: this connection plans them now.
    const [first] = (await insertDeliveries(connection, [fixture.delivery('lane-0')], { lease: [true], leaseMs: LEASE_MS })).leased;
    await recordAttempts(connection, [delivered(first!)]);
    await claimDeliveries(connection, ['1'], LEASE_MS);
    take();

    // A backlog: 2,000 pending deliveries in 400 lanes, stored by other connections.
    for (let offset = 0; offset < BACKLOG; offset += 500) {
      await insertDeliveries(
        fixture.db,
        Array.from({ length: 500 }, (_, index) => fixture.delivery(`lane-${(offset + index) % 400}`)),
      );
    }
    const pending = await fixture.db.query<{ id: string }>(`SELECT min(id)::text AS id FROM webhook_deliveries WHERE state = 'pending' GROUP BY lane ORDER BY min(id) LIMIT 3`);
    const heads = pending.rows.map((row) => row.id);

    // The same connection, the same plans: stored behind the backlog, claimed, recorded.
    const stored = await insertDeliveries(connection, [fixture.delivery('lane-1'), fixture.delivery('lane-new')]);
    expect(stored.inserted).toHaveLength(2);
    const claimed = await claimDeliveries(connection, heads, LEASE_MS);
    expect(claimed.map((each) => each.id).sort()).toEqual([...heads].sort());
    const next = await recordAttempts(connection, claimed.map(delivered));
    expect(next.every(({ nextInLane }) => nextInLane !== undefined)).toBe(true);

    const ran = inner(take());
    // The insert, the claim and the record, each planned on the empty table; and the lane triggers'
    // statements (migration 0024): a probe per delivery stored in an entity's lane (2) and the lock
    // of the head one found (1, by id), a probe per finish (3).
    expect(ran).toHaveLength(9);
    for (const plan of ran) {
      if (!plan.includes('h.id = head')) expect(plan).toContain('webhook_deliveries_lane_idx');
      // A trigger's lane probe stops at the head: never an aggregate over the lane's every delivery.
      if (plan.includes('NEW.lane')) expect(plan).toMatch(/Limit[^\n]*\n\s*->\s*Index (Only )?Scan using webhook_deliveries_lane_idx/);
      expect(plan).not.toMatch(/Seq Scan on webhook_deliveries|Bitmap|webhook_deliveries_due_idx/);
      // The primary key only ever looks ids up, never walks the table.
      for (const scan of plan.matchAll(/Index (?:Only )?Scan(?: Backward)? using webhook_deliveries_pkey[^\n]*\n[^\n]*/g)) expect(scan[0]).toContain('Index Cond');
    }
  });

  it('counts an endpoint’s pending admin-made deliveries through their own index, not through its routed backlog', async () => {
    // A backlog of routed deliveries (the first test's, and more), analyzed as a grown table is.
    await insertDeliveries(fixture.db, Array.from({ length: 1_000 }, (_, index) => fixture.delivery(`routed-${index}`)));
    await fixture.db.exec('ANALYZE webhook_deliveries');
    take();
    const stored = await storeAdminDeliveries(connection, fixture.endpointId, [{ ...fixture.delivery('replayed'), trigger: 'replay' }], 20_000);
    expect(stored.inserted).toHaveLength(1);
    const [count] = take().filter((plan) => plan.includes('count('));
    expect(count).toContain('webhook_deliveries_admin_pending_idx');
    expect(count).not.toMatch(/Seq Scan|webhook_deliveries_lane_idx/);
  });

  it('analyzes webhook_deliveries from a sample of 3,000 rows at most: every column has a statistics target of 10 or less', async () => {
    const { rows } = await fixture.db.query<{ column: string; target: number }>(
      `SELECT attname AS column, coalesce(attstattarget, -1)::int AS target FROM pg_attribute
        WHERE attrelid = 'webhook_deliveries'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    );
    expect(rows.length).toBeGreaterThan(10);
    // -1: the default target (100), a sample of 30,000 rows.
    expect(rows.filter((row) => row.target < 0 || row.target > 10)).toEqual([]);
    expect(rows.find((row) => row.column === 'body')?.target).toBe(0);
  });
});

describe('the look for due deliveries', () => {
  let own: DeliveryFixture;
  let looker: pg.Client;
  const looked: string[] = [];

  beforeAll(async () => {
    own = await createDeliveryFixture();
    looker = await explainingClient(own.url, looked);
  });

  afterAll(async () => {
    await looker?.end();
    await own?.dispose();
  });

  it('is planned once, on the empty table, and with a backlog walks the due index in order to its limit, probing lanes through the lane index', async () => {
    const connection = databaseOn(looker);
    expect(await claimDue(connection, 10, LEASE_MS, [])).toEqual([]);

    // 2,000 pending deliveries in 400 lanes, stored by another connection, not analyzed.
    for (let offset = 0; offset < BACKLOG; offset += 500) {
      await insertDeliveries(
        own.db,
        Array.from({ length: 500 }, (_, index) => own.delivery(`lane-${(offset + index) % 400}`)),
      );
    }
    looked.splice(0);
    const other = await own.endpoint('skipped');
    const claimed = await claimDue(connection, 50, LEASE_MS, [other]);
    // The first 50 stored, each its lane's head.
    const first = await own.db.query<{ id: string }>('SELECT d.id::text AS id FROM webhook_deliveries d ORDER BY d.id LIMIT 50');
    expect(claimed.map((delivery) => Number(delivery.id)).sort((a, b) => a - b)).toEqual(first.rows.map((row) => Number(row.id)));

    const [plan, ...more] = looked.filter((each) => each.includes('webhook_deliveries') && !each.includes('FROM tributary_webhook_'));
    expect(more).toEqual([]);
    // The plan of the first call, kept: its arguments are parameters, not the values of either call.
    expect(plan).toMatch(/ALL \(\$3\)/);
    expect(plan).toContain('Index Scan using webhook_deliveries_due_idx');
    expect(plan).toContain('webhook_deliveries_lane_idx');
    expect(plan).not.toMatch(/Seq Scan|Bitmap|Sort/);
    for (const scan of plan!.matchAll(/Index (?:Only )?Scan(?: Backward)? using webhook_deliveries_pkey[^\n]*\n[^\n]*/g)) expect(scan[0]).toContain('Index Cond');
  });
});
