/**
 * The poller on the production pool (`createOutboxPool`) against a real Postgres, when another
 * session gets in its way: a pending row locked by an open transaction holds up only its own
 * partition, and says so; a login that may read the outbox but not mark its rows is an outbox down.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPoller } from '../../src/pipeline/outbox/outbox-poller.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

async function setUp(url?: (db: { url: string }) => string) {
  const db = await createTestDatabase();
  const admin = openTestPool(db.url, { max: 3 });
  await admin.query(outboxTableDdl(outboxTable('event_outbox')));
  const appended: RealtimeEvent[] = [];
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: (_stream, event) => appended.push(event) });
  onTestFinished(() => log.close());
  const start = (pollerUrl: string) => {
    // The production pool, with a short lock wait: what the test is about is that there is one.
    const pool = createOutboxPool(pollerUrl, logger, { lockTimeoutMs: 300 });
    onTestFinished(() => pool.end());
    const poller = createOutboxPoller({ pool, outboxId: 'outbox-locks', scope: { app: 'shop', env: 'prod' }, router: createEventRouter({ log, logger }), logger, intervalMs: 20 });
    onTestFinished(() => poller.stop());
    poller.start();
    return poller;
  };
  return { db, admin, appended, start: () => start(url?.(db) ?? db.url) };
}

describe('the outbox poller beside other sessions', () => {
  it('routes every other entity while one pending row is locked by an open transaction, says why that one waits, and routes it once the lock is gone', { timeout: 60_000 }, async () => {
    const { admin, appended, start } = await setUp();
    const locked = await enqueueOutboxEvent(admin, { topic: 'orders', type: 'order.created', payload: { n: 0 }, entity: 'order:0' });
    // An operator's UPDATE left open in psql.
    const operator = await admin.connect();
    onTestFinished(() => operator.release());
    await operator.query('BEGIN');
    await operator.query(`UPDATE event_outbox SET payload = '{"n": 0, "fixed": true}' WHERE id = $1`, [locked]);
    for (let n = 1; n <= 40; n += 1) await enqueueOutboxEvent(admin, { topic: 'orders', type: 'order.created', payload: { n }, entity: `order:${n}` });

    // The rows of the locked row's partition (of the poller's 16, by entity hash) wait behind it, in order.
    const { rows } = await admin.query<{ entity: string; behind: boolean }>(
      `SELECT entity, mod(abs(hashtext(entity)::bigint), 16) = mod(abs(hashtext('order:0')::bigint), 16) AS behind FROM event_outbox ORDER BY id`,
    );
    const free = rows.filter((row) => !row.behind).map((row) => row.entity);
    expect(free.length).toBeGreaterThan(30);

    const poller = start();
    await waitFor(() => appended.length === free.length, { timeoutMs: 30_000, message: 'the other partitions’ rows were not routed' });
    expect(appended.map((event) => event.metadata.entity).sort()).toEqual(free.sort());
    await waitFor(async () => (await poller.status()).lastError?.includes('waiting on a row lock held by another session') === true);
    expect(await poller.status()).toMatchObject({ pending: rows.length - free.length });

    await operator.query('COMMIT');
    await waitFor(() => appended.length === 41, { timeoutMs: 30_000, message: 'the rows behind the lock were not routed once it was gone' });
    expect(appended[free.length]).toMatchObject({ payload: { n: 0, fixed: true }, metadata: { entity: 'order:0' } });
    await waitFor(async () => (await poller.status()).lastError === null);
  });

  it('is down (status UNAVAILABLE, naming the privileges missing) while its login may read the outbox but not mark its rows', { timeout: 60_000 }, async () => {
    const role = uniqueName('outbox_reader');
    const { admin, appended, start } = await setUp((db) => {
      const url = new URL(db.url);
      url.username = role;
      url.password = 'secret';
      return url.toString();
    });
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'secret'`);
    onTestFinished(async () => {
      await admin.query(`DROP OWNED BY ${role}`);
      await admin.query(`DROP ROLE ${role}`);
    });
    await admin.query(`GRANT SELECT, INSERT ON event_outbox TO ${role}`);
    await enqueueOutboxEvent(admin, { topic: 'orders', type: 'order.created', payload: {} });

    const poller = start();
    await waitFor(
      async () => {
        const failure = await poller.status().then(() => undefined, (error: unknown) => error);
        return failure instanceof Error && /lacks UPDATE, DELETE on event_outbox/.test(failure.message) ? failure : undefined;
      },
      { message: 'status() did not report the outbox down' },
    ).then((failure) => expect(failure).toMatchObject({ code: ErrorCode.UNAVAILABLE }));

    await admin.query(`GRANT UPDATE, DELETE ON event_outbox TO ${role}`);
    await waitFor(() => appended.length === 1, { timeoutMs: 30_000, message: 'the row was not routed once the privileges were back' });
    await waitFor(async () => (await poller.status().catch(() => undefined))?.lastError === null);
  });
});
