/**
 * `outbox.dead_rows`: outbox rows set aside as dead raise an alert, on a real platform database.
 * They used to show only in `outboxStatus.dead` and `tributary_outbox_dead_total`, and the
 * retention sweep deleted them (8 dead rows read 0 after it): nothing fired, ever.
 *
 * - The real pollers of a workers process (`createOutboxPollers`) on a real application database:
 *   the rows they set aside are counted in the platform database with their report, and the alert
 *   stays open after the sweep deleted the rows; it resolves once the window holds no dead row.
 * - Rule level: counts written where (and as) the readers write them (`recordOutboxDeadRows`).
 * - A write of the counts that fails (the platform's table renamed away): the reader keeps them
 *   until one succeeds, in both read modes. They used to be handed over once and dropped.
 * - End to end, in both read modes: a server (workers and alerts in one process) reading an
 *   application's outbox; a row that can never be routed fires the alert.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { outboxDeadRowsRule } from '../../src/pipeline/alerts/rules/outbox-rules.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { getOutboxSource, recordOutboxDeadRows, saveOutboxSource } from '../../src/pipeline/outbox/outbox-store.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createOutboxPollers } from '../../src/workers/outbox-pollers.ts';
import { gql } from '../helpers/cdc.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, startTestServer, type LogLine } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const ALERT = alertIdOf({ rule: 'outbox.dead_rows', subject: 'outbox:app/env', scope: SCOPE });

/** A platform database with app/env's POLL outbox on an application database of its own, and an evaluator of `outbox.dead_rows` over 5 minutes. */
async function setUp(allowed = 0, pollerLogger = logger) {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  const appDb = await createTestDatabase();
  const app = openTestPool(appDb.url);
  await app.query(outboxTableDdl(outboxTable('event_outbox')));
  const source = await saveOutboxSource(db, {
    app: 'app', env: 'env', databaseUrl: appDb.url, table: 'event_outbox', identity: appDb.name, requestedMode: 'POLL', readMode: 'POLL', requireTenant: false,
  });
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const router = createEventRouter({ log, logger });
  const evaluator = createAlertEvaluator({
    db, router, rules: [outboxDeadRowsRule(db, { allowed })], policy: { fireAfter: 2, resolveAfter: 3 },
    windowMs: 300_000, holder: randomUUID(), leaseMs: 60_000, logger,
  });
  const evaluate = async (times: number) => {
    for (let done = 0; done < times; done += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
  };
  const startPollers = async () => {
    const pollers = createOutboxPollers({
      db, connect: (url) => createOutboxPool(url, logger), router, logger: pollerLogger, metrics: createMetrics({ processMetrics: false }),
      pollIntervalMs: 50, retentionMs: 3_600_000, maxPayloadBytes: 65_536, reportIntervalMs: 100,
    });
    onTestFinished(() => pollers.close());
    await pollers.refresh();
  };
  return { db, app, outboxId: source.outboxId, evaluate, startPollers };
}

/** Moves every dead-row count back by an hour: as if counted an hour ago, out of the window. */
async function anHourPasses(db: Database): Promise<void> {
  await db.query("UPDATE outbox_dead_counts SET minute = minute - interval '1 hour'");
}

/** Renames the platform's dead-row counts away, so that every write of them fails; returns what puts them back. */
async function breakDeadCounts(db: { query(text: string): Promise<unknown> }): Promise<() => Promise<void>> {
  await db.query('ALTER TABLE outbox_dead_counts RENAME TO outbox_dead_counts_away');
  return async () => {
    await db.query('ALTER TABLE outbox_dead_counts_away RENAME TO outbox_dead_counts');
  };
}

const linesSaying = (lines: readonly LogLine[], message: string) => lines.filter((line) => line.msg === message);

const deadCounted = async (db: Database) => (await db.query<{ n: number }>('SELECT coalesce(sum(row_count), 0)::int AS n FROM outbox_dead_counts')).rows[0]?.n;

describe('outbox.dead_rows', () => {
  it('fires when the pollers set rows aside as dead, stays open after the retention sweep deleted them, and resolves once the window holds none', async () => {
    const { db, app, evaluate, startPollers } = await setUp();
    await app.query(
      `INSERT INTO event_outbox (topic, event_type, payload) VALUES
         ('not a topic', 'order.created', '{}'), ('not a topic', 'order.created', '{}'), ('orders', 'order.created', '[1]'), ('orders', 'order.created', '{}')`,
    );
    await startPollers();
    await waitFor(async () => (await deadCounted(db)) === 3, { message: 'the three dead rows are counted in the platform database' });
    await evaluate(2);
    const fired = await getAlert(db, ALERT);
    expect(fired).toMatchObject({ state: 'firing', severity: 'warning', lastValue: 3 });
    expect(fired?.message).toBe('3 outbox rows were set aside as dead in the last 300 s (most often: invalid topic name): never routed');

    // The retention sweep deletes the dead rows from the outbox; the reader then reports none there.
    await app.query('DELETE FROM event_outbox WHERE processed_at IS NOT NULL');
    await waitFor(async () => (await getOutboxSource(db, 'app', 'env'))?.report?.dead === 0, { message: 'the swept outbox is reported without dead rows' });
    await evaluate(3);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 3 });

    await anHourPasses(db);
    await evaluate(3);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'resolved' });
  });

  it('keeps the rows a poller set aside while their counts cannot be written, and counts them once when they can', async () => {
    const logs = captureLogs();
    const { db, app, startPollers } = await setUp(0, createLogger({ level: 'warn', destination: logs }));
    const repair = await breakDeadCounts(db);
    await app.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('not a topic', 'order.created', '{}'), ('orders', 'order.created', '[1]')`);
    await startPollers();
    // A report fails only once it holds dead rows to write: with them, it failed.
    await waitFor(() => linesSaying(logs.lines, 'outbox status could not be reported').length > 0, { message: 'a report with the dead rows failed' });
    await waitFor(async () => (await app.query<{ n: number }>('SELECT count(*)::int AS n FROM event_outbox WHERE dead_reason IS NOT NULL')).rows[0]?.n === 2, {
      message: 'both rows are set aside',
    });
    await repair();
    await waitFor(async () => (await deadCounted(db)) === 2, { message: 'the two dead rows are counted once the counts can be written' });

    // Counted once: the reports after it add nothing.
    for (let reports = 0; reports < 2; reports += 1) {
      const before = (await getOutboxSource(db, 'app', 'env'))?.report?.reportedAt?.getTime() ?? 0;
      await waitFor(async () => ((await getOutboxSource(db, 'app', 'env'))?.report?.reportedAt?.getTime() ?? 0) > before, { timeoutMs: 20_000, message: 'another report is saved' });
    }
    expect(await deadCounted(db)).toBe(2);
  });

  it('allows ALERTS_OUTBOX_DEAD_ROWS_ALLOWED dead rows in the window', async () => {
    const { db, outboxId, evaluate } = await setUp(3);
    await recordOutboxDeadRows(db, outboxId, new Map([['tenant missing', 3]]));
    await evaluate(2);
    expect(await getAlert(db, ALERT)).toBeUndefined();

    await recordOutboxDeadRows(db, outboxId, new Map([['tenant missing', 1]]));
    await evaluate(2);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 4, message: expect.stringContaining('(most often: tenant missing)') as unknown });
  });

  it('counts only the outbox’s current table, and resolves as gone once the outbox is removed', async () => {
    const { db, outboxId, evaluate } = await setUp();
    await recordOutboxDeadRows(db, 'obx_of_an_earlier_table', new Map([['invalid tenant', 5]]));
    await evaluate(2);
    expect(await getAlert(db, ALERT)).toBeUndefined();

    await recordOutboxDeadRows(db, outboxId, new Map([['invalid tenant', 1]]));
    await evaluate(2);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 1 });

    await db.query("DELETE FROM outbox_sources WHERE app = 'app' AND env = 'env'");
    await evaluate(1);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'resolved', message: 'outbox:app/env no longer exists' });
  });
});

describe('an outbox row that can never be routed, end to end', () => {
  it.each(['POLL', 'WAL'])('fires outbox.dead_rows in the environment, with the reason (%s mode)', { timeout: 120_000 }, async (mode) => {
    const platform = await createTestDatabase({ migrated: true });
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, DATABASE_URL: platform.url, OUTBOX_POLL_INTERVAL_MS: '50', ALERTS_EVALUATE_SECONDS: '1' });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = await gql(server, admin, 'mutation($url: String!, $mode: OutboxMode) { setOutboxSource(databaseUrl: $url, createTable: true, mode: $mode) { mode } }', {
      url: appDb.url,
      mode,
    });
    expect(set.errors).toBeUndefined();

    await app.query(`INSERT INTO event_outbox (topic, event_type, payload, tenant) VALUES ('orders.created', 'order.created', '[1, 2]', 'a')`);

    const db = openTestPool(platform.url);
    const alert = await waitFor(
      async () =>
        (await db.query<{ state: string; message: string }>("SELECT state, message FROM alerts WHERE rule = 'outbox.dead_rows' AND app = 'shop' AND env = 'prod'")).rows[0],
      { timeoutMs: 60_000, message: 'outbox.dead_rows fires' },
    );
    expect(alert).toEqual({ state: 'firing', message: '1 outbox row was set aside as dead in the last 300 s (most often: payload is not a JSON object): never routed' });
  });

  it('counts a dead row of a WAL-mode outbox whose count could not be written at first, once it can', { timeout: 120_000 }, async () => {
    const platform = await createTestDatabase({ migrated: true });
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    const db = openTestPool(platform.url);
    const logs = captureLogs();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, DATABASE_URL: platform.url, LOG_LEVEL: 'warn' }, { logDestination: logs });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = await gql(server, admin, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: WAL) { mode } }', { url: appDb.url });
    expect(set.errors).toBeUndefined();
    const repair = await breakDeadCounts(db);

    await app.query(`INSERT INTO event_outbox (topic, event_type, payload, tenant) VALUES ('orders.created', 'order.created', '[1, 2]', 'a')`);
    // The CDC leader's report fails only once it holds the dead row to write.
    await waitFor(() => linesSaying(logs.lines, 'outbox figures could not be saved').length > 0, { timeoutMs: 60_000, message: 'a report with the dead row failed' });
    await repair();
    const counted = async () => (await db.query<{ n: number }>('SELECT coalesce(sum(row_count), 0)::int AS n FROM outbox_dead_counts')).rows[0]?.n;
    await waitFor(async () => (await counted()) === 1, { timeoutMs: 60_000, message: 'the dead row is counted once the counts can be written' });
  });
});
