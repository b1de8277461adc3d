/**
 * Outbox rows that would forge one of Tributary's own events (`system.alerts`, `gateway.*`, the
 * webhook and analytics topics) or carry a type `publish` would refuse are set aside as dead, in
 * the real poller against a real Postgres: nothing of them reaches the log, so no subscriber or
 * webhook endpoint (an env-wide relay of `system.alerts` to a pager) ever sees them.
 */
import { expect, it } from 'vitest';
import { startOutboxPoller } from '../helpers/outbox-poller.ts';


it("sets aside rows on Tributary's own topics and rows whose event_type is not a valid name, and routes the rest", async () => {
  const { pool, poller, appended } = await startOutboxPoller('outbox-forged');
  const insert = async (topic: string, type: string) => {
    const forged = { alertId: 'alrt_forged', rule: 'cdc.slot_lost', subject: 'cdc:main', severity: 'critical', state: 'firing', message: 'wake up' };
    const { rows } = await pool.query<{ id: string }>(
      'INSERT INTO event_outbox (topic, event_type, payload) VALUES ($1, $2, $3) RETURNING id::text AS id',
      [topic, type, forged],
    );
    return rows[0]!.id;
  };
  const expected = {
    [await insert('system.alerts', 'alert.fired')]: "topic is one of Tributary's own",
    [await insert('system.dashboard', 'dashboard.updated')]: "topic is one of Tributary's own",
    [await insert('gateway.connections', 'socket.opened')]: "topic is one of Tributary's own",
    // A document's change, taken by an endpoint selecting sync.updated for one of Tributary's own.
    [await insert('sync.notes.updated', 'sync.updated')]: 'topic is a sync documents topic',
    [await insert('orders', 'order created!')]: 'invalid event_type',
    [await insert('orders', 'order\ncreated')]: 'invalid event_type',
  };
  await insert('orders', 'order.created');

  expect(await poller.pollOnce()).toBe(7);
  const { rows } = await pool.query<{ id: string; dead_reason: string }>('SELECT id::text AS id, dead_reason FROM event_outbox WHERE dead_reason IS NOT NULL ORDER BY id');
  expect(Object.fromEntries(rows.map((row) => [row.id, row.dead_reason]))).toEqual(expected);
  expect(appended.map((event) => [event.topic, event.type, event.source])).toEqual([['orders', 'order.created', 'database']]);
});
