/**
 * A lane's followers are not due while they wait for its head (migration 0024): a look for due
 * deliveries reads the heads only, however many followers wait behind heads that retry later, and
 * a follower is made due when it becomes its lane's head — by a delivery, a dead letter, or a
 * finish that raced its insert.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { claimDeliveries, claimDue, getDelivery, insertDeliveries, recordAttempts, storeDeliveries, type Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { dueHeads } from '../../src/pipeline/webhooks/due-heads.ts';
import { createDeliveryFixture, holdOpen, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

const LEASE_MS = 30_000;
const LANES = 20;
const FOLLOWERS = 200;

let fixture: DeliveryFixture;
let db: Database;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

const failed = (delivery: Delivery, nextAttemptAt: Date | null) => ({ delivery, outcome: 'failed' as const, status: 500, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt });
const delivered = (delivery: Delivery) => ({ delivery, outcome: 'delivered' as const, status: 204, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null });

/** Rows the due index hands a look (the claim's and the reconciler's walk, in due order), read from the plan as executed. */
async function rowsADueLookReads(): Promise<number> {
  // The claim's planner settings (migration 0011), for this transaction only.
  return db.transaction(async (tx) => {
    await tx.query('SET LOCAL enable_seqscan = off');
    await tx.query('SET LOCAL enable_bitmapscan = off');
    await tx.query('SET LOCAL enable_sort = off');
    const { rows } = await tx.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `EXPLAIN (ANALYZE, FORMAT JSON) SELECT h.id FROM webhook_deliveries h
        WHERE h.state = 'pending' AND h.next_attempt_at <= now() AND (h.leased_until IS NULL OR h.leased_until < now())
          AND h.id = (SELECT min(e.id) FROM webhook_deliveries e WHERE e.endpoint_id = h.endpoint_id AND e.lane = h.lane AND e.state = 'pending')
        ORDER BY h.next_attempt_at LIMIT 50`,
    );
    const scan = findNode(rows[0]!['QUERY PLAN'][0].Plan, (node) => node['Index Name'] === 'webhook_deliveries_due_idx');
    if (!scan) throw new Error('the look does not read the due index');
    // What it handed on and what it read only to drop (not a head, leased).
    return scan['Actual Rows'] + (scan['Rows Removed by Filter'] ?? 0);
  });
}

interface PlanNode {
  'Index Name'?: string;
  'Actual Rows': number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

function findNode(node: PlanNode, test: (node: PlanNode) => boolean): PlanNode | undefined {
  if (test(node)) return node;
  for (const child of node.Plans ?? []) {
    const found = findNode(child, test);
    if (found) return found;
  }
  return undefined;
}

async function dueAt(id: string): Promise<string> {
  const { rows } = await db.query<{ due: string }>(`SELECT CASE WHEN next_attempt_at = 'infinity' THEN 'waiting' WHEN next_attempt_at <= now() THEN 'due' ELSE 'later' END AS due FROM webhook_deliveries WHERE id = $1::bigint`, [id]);
  return rows[0]!.due;
}

describe('followers of a lane', () => {
  it('are not read by a look for due deliveries while their heads wait for a retry', async () => {
    const healthy = await fixture.endpoint('healthy');
    for (let lane = 0; lane < LANES; lane += 1) {
      const { inserted } = await insertDeliveries(db, Array.from({ length: FOLLOWERS }, () => fixture.delivery(`retrying-${lane}`)));
      const [head] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
      await recordAttempts(db, [failed(head!, new Date(Date.now() + 3_600_000))]);
    }
    await db.query('ANALYZE webhook_deliveries');
    // Nothing is due: the look reads nothing (it read the 3,980 followers).
    expect(await rowsADueLookReads()).toBe(0);
    expect((await dueHeads(db, 0, 1000)).heads).toEqual([]);
    // A due head of another endpoint is the one row the look reads, and the one claimed.
    await storeDeliveries(db, [{ ...fixture.delivery('fresh'), endpointId: healthy }]);
    expect(await rowsADueLookReads()).toBe(1);
    const claimed = await claimDue(db, 50, LEASE_MS, []);
    expect(claimed.map((delivery) => delivery.endpointId)).toEqual([healthy]);
    await recordAttempts(db, [delivered(claimed[0]!)]);
  });

  it('become due one at a time as their heads are delivered or dead-lettered', async () => {
    const { inserted } = await storeDeliveries(db, [fixture.delivery('moving'), fixture.delivery('moving'), fixture.delivery('moving')]);
    expect([await dueAt(inserted[0]!), await dueAt(inserted[1]!), await dueAt(inserted[2]!)]).toEqual(['due', 'waiting', 'waiting']);
    // Read as a delivery (the admin's view): no next attempt of its own yet.
    expect((await getDelivery(db, inserted[1]!))?.nextAttemptAt).toBeNull();
    const [first] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    await recordAttempts(db, [delivered(first!)]);
    expect([await dueAt(inserted[1]!), await dueAt(inserted[2]!)]).toEqual(['due', 'waiting']);
    const [second] = await claimDeliveries(db, [inserted[1]!], LEASE_MS);
    await recordAttempts(db, [failed(second!, null)]);
    expect(await dueAt(inserted[2]!)).toBe('due');
  });

  it('are made due when their head finishes while they are being stored, in either order', async () => {
    // The insert first: the finish waits for it, then sees the follower.
    const { inserted } = await storeDeliveries(db, [fixture.delivery('racing')]);
    const [head] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    const storing = await holdOpen(db, (tx) => insertDeliveries(tx, [fixture.delivery('racing')]));
    const follower = storing.result.inserted[0]!;
    const finishing = recordAttempts(db, [delivered(head!)]);
    await waitFor(async () => (await lockWaiters()) > 0);
    await storing.commit();
    await finishing;
    expect(await dueAt(follower)).toBe('due');

    // The finish first: the insert waits for it, then finds the lane empty — a head, due.
    const [next] = await claimDeliveries(db, [follower], LEASE_MS);
    const recording = await holdOpen(db, (tx) => recordAttempts(tx, [delivered(next!)]));
    const stored = insertDeliveries(db, [fixture.delivery('racing')]);
    await waitFor(async () => (await lockWaiters()) > 0);
    await recording.commit();
    const [last] = (await stored).inserted;
    expect(await dueAt(last!)).toBe('due');
  });

  it('of an event’s own lane are stored as before', async () => {
    const { inserted } = await storeDeliveries(db, [fixture.delivery('event:ev-own'), { ...fixture.delivery('event:ev-own'), trigger: 'manual' }]);
    expect([await dueAt(inserted[0]!), await dueAt(inserted[1]!)]).toEqual(['due', 'due']);
  });
});

async function lockWaiters(): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`);
  return rows[0]!.n;
}

