/**
 * A WAL-mode outbox's catch-up and clean-up (`cdc/wal-outboxes.ts`) against a real application
 * database, when its statements fail or stall: a failed clean-up round is retried once the table
 * answers again (it must not fail every later round and catch-up until a restart); a clean-up
 * round under way while its queue overflows deletes exactly what it took; a catch-up or a status
 * read stuck behind a lock gives up after the outbox pool's statement timeout instead of holding
 * the chunks that wait for it. The WAL's transactions are handed to `take` as the reader decodes
 * them, their rows inserted into the table beforehand, as they would be.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createWalOutboxes, type WalOutboxes } from '../../src/pipeline/cdc/wal-outboxes.ts';
import type { TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { MAX_CLEAN_UP_QUEUE } from '../../src/pipeline/cdc/wal-outbox-cleanup.ts';
import { OUTBOX_CONNECTION_LIMITS, type OutboxConnectionLimits } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

/** An outbox `event_outbox` of a new database, read by WAL outboxes with the reader's connections and the outbox's own (with `limits`). */
async function setUp(limits: Partial<OutboxConnectionLimits> = {}) {
  const db = await createTestDatabase();
  const app = openTestPool(db.url, { max: 4 });
  await app.query(outboxTableDdl(outboxTable('event_outbox')));
  const publication = uniqueName('pub');
  await app.query(`CREATE PUBLICATION ${publication} FOR ALL TABLES`);
  const connections = createSourceConnections(db.url);
  onTestFinished(() => connections.dispose());
  const own = createSourceConnections(db.url, { ...OUTBOX_CONNECTION_LIMITS, ...limits });
  onTestFinished(() => own.dispose());
  const log = createMemoryLog({ retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const outboxes: WalOutboxes = createWalOutboxes({
    connections,
    publicationName: publication,
    router: createEventRouter({ log, logger }),
    logger,
    retentionMs: 3_600_000,
  });
  onTestFinished(() => outboxes.stop());
  outboxes.set([{ table: 'event_outbox', connections: own, outboxId: 'obx_test', scope: { app: 'a', env: 'e' }, maxPayloadBytes: 65_536, requireTenant: false }]);
  /** Inserts `count` rows; their ids. */
  const insert = async (count: number) =>
    (await app.query<{ id: string }>(`INSERT INTO event_outbox (topic, event_type, payload) SELECT 'orders', 'x', '{}' FROM generate_series(1, $1::int) RETURNING id::text AS id`, [count])).rows.map(
      (row) => row.id,
    );
  const rowsLeft = async () => Number((await app.query<{ count: string }>('SELECT count(*) FROM event_outbox')).rows[0]!.count);
  return { db, app, outboxes, insert, rowsLeft };
}

/** The WAL's transaction inserting these rows, committed after any catch-up's snapshot. */
function insertsOf(ids: readonly string[]): TransactionChunk {
  return {
    xid: 4_000_000,
    commitLsn: 'FFFF/0',
    commitTime: new Date(),
    final: true,
    changes: ids.map((id, index) => ({
      operation: 'insert',
      table: { schema: 'public', name: 'event_outbox' },
      keyColumns: ['id'],
      new: { id, topic: 'orders', event_type: 'x', payload: {} },
      old: undefined,
      unchangedToastColumns: [],
      lsn: '0/0',
      lsnIndex: index,
    })),
  };
}

describe('a WAL-mode outbox whose table fails or stalls', () => {
  it('cleans up and catches up again once the table answers after a failed clean-up round', { timeout: 60_000 }, async () => {
    const { app, outboxes, insert, rowsLeft } = await setUp();
    await outboxes.onReady();
    const ids = await insert(3);
    // The table away while its routed rows wait to be deleted: clean-up rounds fail, and so does a catch-up.
    await app.query('ALTER TABLE event_outbox RENAME TO event_outbox_away');
    const chunk = outboxes.take(insertsOf(ids));
    expect(chunk.events).toHaveLength(3);
    chunk.routed();
    await outboxes.suspend();
    await outboxes.onReady();
    expect((await outboxes.inspect())[0]?.lastError).toContain('"event_outbox" does not exist');

    // Back: the next catch-up deletes the routed rows first, and the outbox reads the WAL again.
    await app.query('ALTER TABLE event_outbox_away RENAME TO event_outbox');
    await outboxes.suspend();
    await outboxes.onReady();
    expect((await outboxes.inspect())[0]).toMatchObject({ lastError: null, pending: 0 });
    expect(await rowsLeft()).toBe(0);
    expect(outboxes.take(insertsOf(await insert(2))).events).toHaveLength(2);
  });

  it('deletes exactly what a clean-up round took when the queue overflows during the round', { timeout: 120_000 }, async () => {
    const { app, db, outboxes, insert, rowsLeft } = await setUp();
    await outboxes.onReady();
    const first = await insert(1_000);
    const overflow = await insert(MAX_CLEAN_UP_QUEUE);
    // The first round's DELETE waits for these rows' locks, so the next chunk arrives during it.
    const locker = await app.connect();
    onTestFinished(() => locker.release());
    await locker.query('BEGIN');
    await locker.query('SELECT id FROM event_outbox WHERE id = ANY($1::bigint[]) FOR UPDATE', [first]);
    outboxes.take(insertsOf(first)).routed();
    await waitFor(
      async () =>
        (await app.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM%'`, [db.name])).rowCount === 1,
      { timeoutMs: 10_000, message: 'a clean-up round waits for the locked rows' },
    );
    // The queue passes its limit only with the ids the waiting round holds.
    outboxes.take(insertsOf(overflow)).routed();
    await locker.query('COMMIT');

    // Every routed row deleted: none left to be routed again by the next catch-up.
    await outboxes.stop();
    expect(await rowsLeft()).toBe(0);
  });

  it('gives up a catch-up and a status read stuck behind a lock after the statement timeout, and catches up once it is released', { timeout: 60_000 }, async () => {
    const { app, outboxes, insert, rowsLeft } = await setUp({ queryTimeoutMs: 500 });
    await insert(2);
    // As VACUUM FULL or a long ALTER TABLE would hold it.
    const locker = await app.connect();
    onTestFinished(() => locker.release());
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE event_outbox IN ACCESS EXCLUSIVE MODE');

    await outboxes.onReady();
    // Nothing holds the chunks of the database any longer.
    await outboxes.catchingUp;
    const [figures] = await outboxes.inspect();
    expect(figures?.lastError).toContain('Query read timeout');
    // Not caught up: the WAL's rows wait for the catch-up that will route them from the table.
    expect(outboxes.take(insertsOf(['1'])).events).toHaveLength(0);

    await locker.query('COMMIT');
    await outboxes.suspend();
    await outboxes.onReady();
    expect((await outboxes.inspect())[0]).toMatchObject({ lastError: null, pending: 0, routed: 2 });
    expect(await rowsLeft()).toBe(0);
  });
});
