/**
 * The CDC service's housekeeping prunes `cdc_events` (raw changes) on a real platform database:
 * every expired row in one pass, however many, and even while the rest of the pass fails.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createCdcService, type WalOutboxCatalog } from '../../src/pipeline/cdc/cdc-service.ts';
import { createCdcStore, type CdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const EXPIRED_ROWS = 25_000;

/** A migrated platform database with `EXPIRED_ROWS` raw changes received two hours ago and one received now. */
async function platformWithExpiredChanges() {
  const database = await createTestDatabase();
  const db = createPostgresDatabase({ url: database.url, logger });
  onTestFinished(() => db.close());
  await migrate(db, { logger });
  await db.query(
    `INSERT INTO cdc_events (source, lsn, commit_lsn, xid, table_name, operation, new_row, received_at)
     SELECT 'src', '0/0', '0/0', n, 'public.items', 'insert', '{}'::jsonb, now() - interval '2 hours' FROM generate_series(1, $1) AS n`,
    [EXPIRED_ROWS],
  );
  await db.query(`INSERT INTO cdc_events (source, lsn, commit_lsn, xid, table_name, operation) VALUES ('src', '0/1', '0/1', 0, 'public.items', 'insert')`);
  const count = async () => Number((await db.query<{ count: string }>('SELECT count(*) FROM cdc_events')).rows[0]!.count);
  return { db, count };
}

/** A CDC service with no source, housekeeping every few ms, raw changes kept an hour. */
function startService(store: CdcStore, outboxes: WalOutboxCatalog) {
  const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const service = createCdcService({
    store,
    router: createEventRouter({ log, logger }),
    log,
    logger,
    connect: (url) => createSourceConnections(url),
    connectOutbox: (url) => createSourceConnections(url),
    redis: undefined,
    keyPrefix: 'test:',
    reloadIntervalMs: 3_600_000,
    rawRetentionMs: 3_600_000,
    housekeepingIntervalMs: 20,
    outboxes,
  });
  onTestFinished(() => service.close());
  return service;
}

describe('CDC housekeeping: raw changes', () => {
  it('deletes every expired raw change in one pass, in batches, and keeps the recent one', async () => {
    const { db, count } = await platformWithExpiredChanges();
    const real = createCdcStore(db);
    /** What each pass did: `pass` when it starts (its reload lists the outboxes), then each prune statement's count. */
    const trace: (number | 'pass')[] = [];
    const store: CdcStore = {
      ...real,
      async pruneRawChanges(before, limit) {
        const deleted = await real.pruneRawChanges(before, limit);
        trace.push(deleted);
        return deleted;
      },
    };
    startService(store, {
      list() {
        trace.push('pass');
        return Promise.resolve([]);
      },
      report: async () => {},
      retentionMs: 3_600_000,
    });

    await waitFor(async () => (await count()) === 1, { message: 'the expired raw changes are pruned' });
    const deleting = trace.flatMap((entry, index) => (typeof entry === 'number' && entry > 0 ? [index] : []));
    const onePass = trace.slice(deleting[0], deleting.at(-1)! + 1);
    expect(onePass.filter((entry) => entry === 'pass'), JSON.stringify(trace.slice(0, 12))).toEqual([]);
    expect(onePass.reduce<number>((sum, entry) => sum + (entry as number), 0)).toBe(EXPIRED_ROWS);
    expect(Math.max(...(onePass as number[]))).toBeLessThanOrEqual(10_000);
  });

  it('prunes while the reload of sources fails', async () => {
    const { db, count } = await platformWithExpiredChanges();
    let reloads = 0;
    startService(createCdcStore(db), {
      list() {
        reloads += 1;
        return Promise.reject(new Error('the outbox sources cannot be listed'));
      },
      report: async () => {},
      retentionMs: 3_600_000,
    });

    await waitFor(async () => (await count()) === 1, { message: 'the expired raw changes are pruned' });
    expect(reloads).toBeGreaterThan(0);
  });
});
