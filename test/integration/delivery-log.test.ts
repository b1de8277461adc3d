/**
 * The delivery log's housekeeping against a real Postgres. Each endpoint's backlog is read from its
 * pending deliveries alone — through the lane index, even with statistics taken while most of the
 * table was pending (the plan is read as it runs: auto_explain on this test's own connection, as in
 * delivery-plans.test.ts). Pruning goes on past one batch until nothing older than the retention is
 * left, stops at its budget, and skips rows another pruner holds instead of waiting for them.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { endpointBacklog, pruneWebhookLog } from '../../src/pipeline/webhooks/delivery-log.ts';
import type { AttemptOutcome } from '../../src/pipeline/webhooks/attempt-outcome.ts';
import { claimDeliveries, insertDeliveries, recordAttempts } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { databaseOn } from '../helpers/single-connection.ts';

const LEASE_MS = 30_000;
const HOUR_MS = 3_600_000;
/** A budget no pass here reaches: it ends when a batch comes back short. */
const UNBOUNDED = { budgetMs: 10 * 60_000 };

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

/** `count` pending deliveries to `endpointId`, each in a lane of its own; resolves with their ids. */
async function pending(endpointId: string, count: number, on: DeliveryFixture = fixture): Promise<string[]> {
  const deliveries = Array.from({ length: count }, () => ({ ...on.delivery(`lane-${(lanes += 1)}`), endpointId }));
  return (await insertDeliveries(on.db, deliveries)).inserted;
}

/** `count` deliveries attempted once and finished (`failed`: dead); resolves with their ids. */
async function finished(endpointId: string, count: number, outcome: AttemptOutcome = 'delivered'): Promise<string[]> {
  const claimed = await claimDeliveries(db, await pending(endpointId, count), LEASE_MS);
  await recordAttempts(
    db,
    claimed.map((delivery) => ({ delivery, outcome, status: outcome === 'delivered' ? 204 : 500, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null })),
  );
  return claimed.map((delivery) => delivery.id);
}

/** Moves deliveries and their attempts back in time by `ms`. */
async function age(ids: readonly string[], ms: number): Promise<void> {
  const by = [ids, ms];
  await db.query(`UPDATE webhook_deliveries SET created_at = created_at - $2::double precision * interval '1 millisecond',
                    finished_at = finished_at - $2::double precision * interval '1 millisecond' WHERE id = ANY($1::bigint[])`, by);
  await db.query(`UPDATE webhook_attempts SET created_at = created_at - $2::double precision * interval '1 millisecond' WHERE delivery_id = ANY($1::bigint[])`, by);
}

const countOf = async (sql: string, params: readonly unknown[]) => (await db.query<{ count: number }>(sql, params)).rows[0]!.count;
const deliveriesOf = (endpointId: string) => countOf(`SELECT count(*)::int AS count FROM webhook_deliveries WHERE endpoint_id = $1`, [endpointId]);
const attemptsOf = (endpointId: string) => countOf(`SELECT count(*)::int AS count FROM webhook_attempts WHERE endpoint_id = $1`, [endpointId]);

describe('webhook backlog figures', () => {
  it('counts each endpoint’s pending deliveries and the oldest one’s age, finished ones left out', async () => {
    const busy = await fixture.endpoint('busy');
    const drained = await fixture.endpoint('drained');
    const idle = await fixture.endpoint('idle');
    const [oldest] = await pending(busy, 3);
    await finished(busy, 5);
    await finished(busy, 2, 'failed');
    await finished(drained, 4);
    // The oldest pending delivery is an hour old; the finished ones are older still.
    await age([oldest!], HOUR_MS);
    await age(await finished(busy, 2), 2 * HOUR_MS);

    const backlog = new Map((await endpointBacklog(db)).map((each) => [each.endpointId, each]));
    // Each with its environment, for the metrics' labels.
    expect(backlog.get(busy)).toMatchObject({ app: 'app', env: 'env', pending: 3 });
    expect(backlog.get(busy)!.oldestPendingSeconds).toBeGreaterThanOrEqual(3_600);
    expect(backlog.get(busy)!.oldestPendingSeconds).toBeLessThan(2 * 3_600);
    // Worked off, or never used: 0 pending, no age.
    expect(backlog.get(drained)).toEqual({ endpointId: drained, app: 'app', env: 'env', pending: 0, oldestPendingSeconds: null });
    expect(backlog.get(idle)).toEqual({ endpointId: idle, app: 'app', env: 'env', pending: 0, oldestPendingSeconds: null });
  });

  it('reads the pending deliveries through the lane index only, with statistics taken while most of the table was pending', async () => {
    // A database of its own: its statistics are this test's.
    const own = await createDeliveryFixture();
    onTestFinished(() => own.dispose());
    // Statistics stay as taken below: no autovacuum analyzes the table meanwhile.
    await own.db.exec('ALTER TABLE webhook_deliveries SET (autovacuum_enabled = false)');
    const ids = await pending(own.endpointId, 2_000, own);
    await own.db.exec('ANALYZE webhook_deliveries');
    // The backlog worked off but for 5: the statistics still say 2,000 pending, where a scan of
    // the whole table is what the planner would choose.
    await own.db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE id = ANY($1::bigint[])`, [ids.slice(5)]);

    const client = new pg.Client({ connectionString: own.url });
    const plans: string[] = [];
    client.on('notice', (notice) => plans.push(notice.message ?? ''));
    await client.connect();
    onTestFinished(() => client.end());
    await client.query(`LOAD 'auto_explain'`);
    await client.query('SET auto_explain.log_min_duration = 0');
    await client.query('SET auto_explain.log_analyze = on');
    await client.query('SET client_min_messages = log');

    const backlog = await endpointBacklog(databaseOn(client));
    expect(backlog.map(({ endpointId, pending }) => ({ endpointId, pending }))).toEqual([{ endpointId: own.endpointId, pending: 5 }]);
    const [plan, ...others] = plans.filter((each) => each.includes('webhook_deliveries'));
    expect(others).toEqual([]);
    // The lane index gave the 5 pending rows and nothing else was read of the table.
    expect(plan).toMatch(/Index Scan using webhook_deliveries_lane_idx on webhook_deliveries d .*rows=5 loops=1\)/);
    expect(plan).not.toMatch(/Seq Scan on webhook_deliveries|Bitmap|webhook_deliveries_(?!lane_idx)\w+_idx|webhook_deliveries_pkey/);
  });
});

describe('webhook log pruning', () => {
  beforeEach(async () => {
    await db.exec('TRUNCATE webhook_deliveries, webhook_attempts');
  });

  it('goes on past one batch until nothing older than the retention is left, keeping pending and recent deliveries', async () => {
    const endpoint = await fixture.endpoint('pruned');
    await age(await finished(endpoint, 250), 2 * HOUR_MS);
    await age(await finished(endpoint, 2, 'failed'), 2 * HOUR_MS);
    await finished(endpoint, 3);
    // Pending, however old, is not the log's to prune.
    await age(await pending(endpoint, 2), 2 * HOUR_MS);

    expect(await pruneWebhookLog(db, HOUR_MS, { batchSize: 100, ...UNBOUNDED })).toEqual({ deliveries: 252, attempts: 252 });
    expect(await deliveriesOf(endpoint)).toBe(5);
    expect(await attemptsOf(endpoint)).toBe(3);
    expect(await pruneWebhookLog(db, HOUR_MS, { batchSize: 100, ...UNBOUNDED })).toEqual({ deliveries: 0, attempts: 0 });
  });

  it('takes no batch after its budget is spent or its signal aborted', async () => {
    const endpoint = await fixture.endpoint('budget');
    await age(await finished(endpoint, 250), 2 * HOUR_MS);

    // A budget of 0 is spent once the first batch of each table is done.
    expect(await pruneWebhookLog(db, HOUR_MS, { batchSize: 100, budgetMs: 0 })).toEqual({ deliveries: 100, attempts: 100 });
    const aborted = AbortSignal.abort();
    expect(await pruneWebhookLog(db, HOUR_MS, { batchSize: 100, ...UNBOUNDED, signal: aborted })).toEqual({ deliveries: 100, attempts: 100 });
    expect(await deliveriesOf(endpoint)).toBe(50);
  });

  it('skips the rows another pruner holds instead of waiting for them', async () => {
    const endpoint = await fixture.endpoint('shared');
    await age(await finished(endpoint, 250), 2 * HOUR_MS);
    // Another process's batch: the 10 oldest of each table, locked until it commits.
    const other = new pg.Client({ connectionString: fixture.url });
    await other.connect();
    onTestFinished(() => other.end());
    await other.query('BEGIN');
    await other.query(`SELECT id FROM webhook_deliveries WHERE state <> 'pending' ORDER BY finished_at LIMIT 10 FOR UPDATE`);
    await other.query(`SELECT id FROM webhook_attempts ORDER BY created_at LIMIT 10 FOR UPDATE`);

    // Waiting for them instead, the pass would not end before the other transaction: a timeout here.
    expect(await pruneWebhookLog(db, HOUR_MS, { batchSize: 100, ...UNBOUNDED })).toEqual({ deliveries: 240, attempts: 240 });
    await other.query('ROLLBACK');
    expect(await pruneWebhookLog(db, HOUR_MS, { batchSize: 100, ...UNBOUNDED })).toEqual({ deliveries: 10, attempts: 10 });
    expect(await deliveriesOf(endpoint)).toBe(0);
  });
});
