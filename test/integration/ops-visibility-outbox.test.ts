/**
 * An outbox nobody can measure, told as such. The pollers' metrics while the outbox's database
 * cannot be read (real Postgres, the database refusing connections): the pending count keeps its
 * last known value, the oldest pending row's age keeps growing from its last measurement — so an
 * age rule fires — and `tributary_outbox_source_up` reads 0. `outboxStatus` marks figures nobody
 * measured for a while as `stale`, and still returns them, with their time.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { saveOutboxSource } from '../../src/pipeline/outbox/outbox-store.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createOutboxPollers } from '../../src/workers/outbox-pollers.ts';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, sharedPostgresUrl, testRedisUrl, uniquePrefix, withClient } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

/** The value of `name{outbox="shop/prod"}` in a scrape, or undefined when absent. */
async function scrape(metrics: Metrics, name: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{outbox="shop/prod"} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('outbox figures nobody can measure', () => {
  it('keep the last pending count, let the oldest row’s age grow and say the source is down while its database refuses connections', { timeout: 60_000 }, async () => {
    const platformDb = await createTestDatabase();
    const platform = createPostgresDatabase({ url: platformDb.url, logger });
    onTestFinished(() => platform.close());
    await migrate(platform, { logger });
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    await app.query(outboxTableDdl(outboxTable('event_outbox')));
    // Three rows written 100 s ago, held by a transaction of the application (FOR UPDATE): the
    // poller's claim waits behind it, so they stay pending while the counts read them.
    await app.query(
      `INSERT INTO event_outbox (topic, event_type, payload, entity, created_at)
       SELECT 'orders.created', 'order.created', '{}', 'order:1', now() - interval '100 seconds' FROM generate_series(1, 3)`,
    );
    const holder = await app.connect();
    // Ended with the database's sessions below, on purpose.
    holder.on('error', () => {});
    onTestFinished(() => holder.release(true));
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM event_outbox FOR UPDATE');
    await saveOutboxSource(platform, {
      app: 'shop',
      env: 'prod',
      databaseUrl: appDb.url,
      table: 'event_outbox',
      identity: appDb.name,
      requestedMode: 'POLL',
      readMode: 'POLL',
      requireTenant: false,
    });
    const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
    onTestFinished(() => log.close());
    const metrics = createMetrics({ processMetrics: false });
    const pollers = createOutboxPollers({
      db: platform,
      connect: (url) => createOutboxPool(url, logger),
      router: createEventRouter({ log, logger }),
      logger,
      metrics,
      pollIntervalMs: 50,
      retentionMs: 3_600_000,
      maxPayloadBytes: 65_536,
      reportIntervalMs: 1_000,
    });
    onTestFinished(() => pollers.close());
    await pollers.refresh();
    await waitFor(async () => (await scrape(metrics, 'tributary_outbox_pending')) === 3, { timeoutMs: 10_000, message: 'the pollers measured the backlog' });
    expect(await scrape(metrics, 'tributary_outbox_source_up')).toBe(1);
    expect(await scrape(metrics, 'tributary_outbox_oldest_pending_seconds')).toBeGreaterThanOrEqual(100);

    // The outbox's database goes away: every session ended, no new one accepted.
    await withClient(sharedPostgresUrl(), async (client) => {
      await client.query(`ALTER DATABASE ${appDb.name} ALLOW_CONNECTIONS false`);
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [appDb.name]);
    });
    onTestFinished(async () => {
      await withClient(sharedPostgresUrl(), (client) => client.query(`ALTER DATABASE ${appDb.name} ALLOW_CONNECTIONS true`));
    });
    await waitFor(async () => (await scrape(metrics, 'tributary_outbox_source_up')) === 0, { timeoutMs: 10_000, message: 'the source reads as down' });
    const first = await scrape(metrics, 'tributary_outbox_oldest_pending_seconds');

    // Another report of the pollers (another failed count) between the two scrapes.
    const rateAt = async () =>
      (await platform.query<{ at: Date }>('SELECT max(reported_at) AS at FROM outbox_rates')).rows[0]?.at.getTime() ?? 0;
    const lastRate = await rateAt();
    await waitFor(async () => (await rateAt()) > lastRate, { timeoutMs: 10_000, message: 'the pollers reported again' });

    expect(await scrape(metrics, 'tributary_outbox_source_up')).toBe(0);
    expect(await scrape(metrics, 'tributary_outbox_pending')).toBe(3);
    const second = await scrape(metrics, 'tributary_outbox_oldest_pending_seconds');
    expect(first).toBeGreaterThanOrEqual(100);
    expect(second).toBeGreaterThan(first!);
  });

  it('marks outboxStatus figures nobody measured for a while as stale, and still returns them with their time', { timeout: 60_000 }, async () => {
    const [platformDb, appDb] = await Promise.all([createTestDatabase({ migrated: true }), createTestDatabase()]);
    // A server alone: no workers process measures the outbox.
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, TRIBUTARY_ROLE: 'server', DATABASE_URL: platformDb.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = await gql(server, admin, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { table } }', { url: appDb.url });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
    const status = async () => {
      const body = await gql(server, admin, '{ outboxStatus { pending oldestPendingSeconds reportedAt stale } }');
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      return body.data?.['outboxStatus'] as { pending: number | null; oldestPendingSeconds: number | null; reportedAt: string | null; stale: boolean };
    };
    expect(await status()).toEqual({ pending: null, oldestPendingSeconds: null, reportedAt: null, stale: true });

    const platform = openTestPool(platformDb.url);
    // As a worker reports its measurement…
    await platform.query(`UPDATE outbox_sources SET pending = 7, oldest_pending_seconds = 12, dead = 0, reported_at = now()`);
    expect(await status()).toMatchObject({ pending: 7, oldestPendingSeconds: 12, stale: false });
    // …then every worker is gone: the measurement ages.
    await platform.query(`UPDATE outbox_sources SET reported_at = now() - interval '31 seconds'`);
    const aged = await status();
    expect(aged).toMatchObject({ pending: 7, oldestPendingSeconds: 12, stale: true });
    expect(Date.now() - Date.parse(aged.reportedAt ?? '')).toBeGreaterThanOrEqual(31_000);
  });
});
