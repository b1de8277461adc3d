/**
 * Outbox event ids against a real Postgres: a row keeps its id however often it is routed, and a
 * row that reuses an earlier row's id — the table's ids restarted (TRUNCATE … RESTART IDENTITY,
 * the table dropped and re-created, a point-in-time restore) — gets an id of its own: subscribers
 * and webhook endpoints de-duplicate by event id, and would drop it. (The same row read from the WAL
 * gets the same id: outbox-wal.test.ts.)
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { outboxEventId } from '../../src/pipeline/events/outbox-event.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPoller } from '../../src/pipeline/outbox/outbox-poller.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';

const logger = createLogger({ level: 'silent' });
const OUTBOX_ID = 'outbox-ids-test';
const DDL = outboxTableDdl(outboxTable('event_outbox'));

async function setUp() {
  const db = await createTestDatabase();
  const admin = openTestPool(db.url, { max: 2 });
  await admin.query(DDL);
  const appended: RealtimeEvent[] = [];
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: (_stream, event) => appended.push(event) });
  onTestFinished(() => log.close());
  const poller = createOutboxPoller({ pool: admin, outboxId: OUTBOX_ID, scope: { app: 'shop', env: 'prod' }, router: createEventRouter({ log, logger }), logger });
  onTestFinished(() => poller.stop());
  const enqueue = () => enqueueOutboxEvent(admin, { topic: 'orders', type: 'order.created', payload: {}, entity: 'order:1' });
  return { db, admin, appended, poller, enqueue };
}

/** The id a row's event must have: derived, independently of the poller's SQL, from its id and its created_at in epoch milliseconds. */
async function expectedIdOf(admin: pg.Pool, rowId: string): Promise<string> {
  const { rows } = await admin.query<{ ms: string }>(
    'SELECT floor(extract(epoch FROM created_at) * 1000)::bigint::text AS ms FROM event_outbox WHERE id = $1::bigint',
    [rowId],
  );
  return outboxEventId(OUTBOX_ID, rowId, rows[0]!.ms);
}

describe('outbox event ids', () => {
  it('gives a row that reuses an earlier row’s id a new event id: ids restarted by TRUNCATE … RESTART IDENTITY, or the table re-created', async () => {
    const { admin, appended, poller, enqueue } = await setUp();
    const first = await enqueue();
    const expected = [await expectedIdOf(admin, first)];
    expect(await poller.pollOnce()).toBe(1);

    await admin.query('TRUNCATE event_outbox RESTART IDENTITY');
    const second = await enqueue();
    expected.push(await expectedIdOf(admin, second));
    expect(await poller.pollOnce()).toBe(1);

    await admin.query('DROP TABLE event_outbox');
    await admin.query(DDL);
    const third = await enqueue();
    expected.push(await expectedIdOf(admin, third));
    expect(await poller.pollOnce()).toBe(1);

    // The same row ids every time…
    expect([second, third]).toEqual([first, first]);
    // …and three events, each with its own id.
    expect(appended.map((event) => event.id)).toEqual(expected);
    expect(new Set(expected).size).toBe(3);
  });

  it('keeps a row’s id when it is routed again, whatever the session’s TimeZone and DateStyle, to the microsecond of created_at', async () => {
    const { db, admin, appended, poller } = await setUp();
    // 999 µs: a conversion that rounds rather than truncates, or goes through a float, moves it to the next millisecond.
    await admin.query(`INSERT INTO event_outbox (topic, event_type, payload, created_at) VALUES ('orders', 'order.created', '{}', '2024-03-31 01:30:00.123999+00')`);
    expect(await poller.pollOnce()).toBe(1);
    await admin.query('UPDATE event_outbox SET processed_at = NULL');
    // The database's sessions now in an odd offset with daylight saving time, and another DateStyle.
    await admin.query(`ALTER DATABASE ${db.name} SET TimeZone = 'America/St_Johns'`);
    await admin.query(`ALTER DATABASE ${db.name} SET DateStyle = 'SQL, DMY'`);
    const other = openTestPool(db.url, { max: 1 });
    expect((await other.query<{ zone: string }>("SELECT current_setting('TimeZone') AS zone")).rows[0]!.zone).toBe('America/St_Johns');
    const again = createOutboxPoller({
      pool: other,
      outboxId: OUTBOX_ID,
      scope: { app: 'shop', env: 'prod' },
      router: createEventRouter({ log: createMemoryLog({ retention: { maxEvents: 10, maxAgeMs: 60_000 }, publish: (_stream, event) => appended.push(event) }), logger }),
      logger,
    });
    onTestFinished(() => again.stop());
    expect(await again.pollOnce()).toBe(1);
    expect(appended).toHaveLength(2);
    expect(appended[1]!.id).toBe(appended[0]!.id);
    expect(appended[0]!.id).toBe(outboxEventId(OUTBOX_ID, '1', String(Date.parse('2024-03-31T01:30:00.123Z'))));
  });
});
