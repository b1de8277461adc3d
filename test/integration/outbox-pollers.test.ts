/**
 * A worker process's outbox pollers (`src/workers/outbox-pollers.ts`) against a real platform
 * database: how its refreshes of the sources line up with one another and with close(). A
 * refresh is held under way by a lock on `outbox_sources` taken by the test, so what happens while
 * one runs is decided by the test, not by timing.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Database, QueryOptions, Row } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { saveOutboxSource } from '../../src/pipeline/outbox/outbox-store.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createOutboxPollers, type OutboxPollers } from '../../src/workers/outbox-pollers.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const REPORT_INTERVAL_MS = 1_000;

/** A platform database with one POLL outbox (an application database of its own), and pollers on it. */
async function setUp() {
  const platformDb = await createTestDatabase();
  const platform = createPostgresDatabase({ url: platformDb.url, logger });
  onTestFinished(() => platform.close());
  await migrate(platform, { logger });
  const appDb = await createTestDatabase();
  await openTestPool(appDb.url).query(outboxTableDdl(outboxTable('event_outbox')));
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
  /** Every pool the pollers opened: one per poller they started. */
  const pools: pg.Pool[] = [];
  const pollers = (db: Database = platform): OutboxPollers => {
    const created = createOutboxPollers({
      db,
      connect(url) {
        const pool = createOutboxPool(url, logger);
        pools.push(pool);
        return pool;
      },
      router: createEventRouter({ log, logger }),
      logger,
      metrics: createMetrics({ processMetrics: false }),
      pollIntervalMs: 50,
      retentionMs: 3_600_000,
      reportIntervalMs: REPORT_INTERVAL_MS,
      maxPayloadBytes: 65_536,
    });
    onTestFinished(() => created.close());
    return created;
  };
  /** Holds every read of `outbox_sources` (a refresh's first statement) until `release()`. */
  const lockSources = async () => {
    const client = new pg.Client({ connectionString: platformDb.url });
    await client.connect();
    onTestFinished(() => client.end());
    await client.query('BEGIN');
    await client.query('LOCK TABLE outbox_sources IN ACCESS EXCLUSIVE MODE');
    return { release: () => client.query('COMMIT') };
  };
  /** Statements of the platform database waiting for a lock: the refreshes held up by `lockSources`. */
  const waitingOnLock = async () => {
    const { rows } = await platform.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    return rows[0]?.n ?? 0;
  };
  return { platform, pools, pollers, lockSources, waitingOnLock };
}

describe('the outbox pollers of a worker process', () => {
  it('skips a status refresh while the last one is still under way', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const { platform, pools, pollers, lockSources, waitingOnLock } = await setUp();
    // Counts the reads of the sources in flight at once (issued synchronously by each refresh).
    let reading = 0;
    let mostAtOnce = 0;
    const counting: Database = {
      ...platform,
      query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
        if (!sql.includes('FROM outbox_sources s ORDER BY')) return platform.query<R>(sql, params, options);
        reading += 1;
        mostAtOnce = Math.max(mostAtOnce, reading);
        return platform.query<R>(sql, params, options).finally(() => (reading -= 1));
      },
    };
    // Created before the lock: the lock's session ends first at teardown, should the test fail holding it.
    const outbox = pollers(counting);
    const lock = await lockSources();

    vi.advanceTimersByTime(REPORT_INTERVAL_MS);
    await waitFor(async () => (await waitingOnLock()) === 1, { message: 'the first refresh waits for the lock' });
    // Three more ticks while it is held up: none of them starts another refresh.
    vi.advanceTimersByTime(3 * REPORT_INTERVAL_MS);
    expect(mostAtOnce).toBe(1);

    await lock.release();
    await waitFor(() => pools.length === 1, { message: 'the refresh starts the poller once the sources are read' });
    await outbox.close();
    expect(mostAtOnce).toBe(1);
    expect(pools.filter((pool) => !pool.ended)).toHaveLength(0);
  });

  it('close() waits for the refreshes under way, and none of them starts a poller after it', async () => {
    const { pools, pollers, lockSources, waitingOnLock } = await setUp();
    const outbox = pollers();
    const lock = await lockSources();
    const refreshes = [outbox.refresh(), outbox.refresh()];
    await waitFor(async () => (await waitingOnLock()) >= 1, { message: 'a refresh waits for the lock' });

    const closing = outbox.close();
    await lock.release();
    await closing;
    await Promise.all(refreshes);
    // Every poller started has been stopped and its pool ended: none outlives close().
    expect(pools.filter((pool) => !pool.ended)).toHaveLength(0);
    await expect(outbox.refresh()).resolves.toBeUndefined();
    expect(pools.filter((pool) => !pool.ended)).toHaveLength(0);
  });
});
