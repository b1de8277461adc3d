/**
 * enqueueOutboxEvent inside a service's own transaction, on a real Postgres outbox table: an
 * event Tributary would refuse is refused before the INSERT — a named error, the transaction
 * still usable and the business write committed — instead of a raw pg error that aborts the
 * transaction (jsonb refusing a NUL or half a surrogate pair) or a row written only to be set
 * aside as dead later (an array payload, a bad or reserved topic, a payload over the limit).
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { enqueueOutboxEvent, InvalidOutboxEventError, type OutboxEventInput } from '@tributary/client/outbox';
import { outboxTable, outboxTableDdl } from '../../../../src/pipeline/outbox/outbox-sql.ts';
import { createTestDatabase, openTestPool } from '../../../../test/helpers/services.ts';

async function setUp(): Promise<pg.Pool> {
  const database = await createTestDatabase();
  const pool = openTestPool(database.url);
  // The table `npm run outbox:sql` creates.
  await pool.query(outboxTableDdl(outboxTable('event_outbox')));
  await pool.query('CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL)');
  await pool.query(`INSERT INTO orders VALUES (1, 'new')`);
  return pool;
}

const valid: OutboxEventInput = { topic: 'orders.paid', type: 'order.paid', payload: { orderId: 1 }, entity: 'order:1' };

/** What the review's script met in practice (scratch/review-outbox/sdk.ts), and the field each names. */
const REFUSED: readonly { readonly label: string; readonly event: OutboxEventInput; readonly field: string; readonly code: string }[] = [
  { label: 'user text with a NUL character', event: { ...valid, payload: { note: 'pasted\u0000text' } }, field: 'payload', code: 'UNSTORABLE_TEXT' },
  { label: 'a string cut inside an emoji', event: { ...valid, payload: { note: '😀 ok'.slice(0, 1) } }, field: 'payload', code: 'UNSTORABLE_TEXT' },
  { label: 'a key with a lone surrogate', event: { ...valid, payload: { nested: { ['k\udc00']: 1 } } }, field: 'payload', code: 'UNSTORABLE_TEXT' },
  { label: 'an array payload', event: { ...valid, payload: [1, 2] as unknown as OutboxEventInput['payload'] }, field: 'payload', code: 'INVALID_VALUE' },
  { label: 'an invalid topic', event: { ...valid, topic: 'orders paid!' }, field: 'topic', code: 'INVALID_NAME' },
  { label: "one of Tributary's topics", event: { ...valid, topic: 'system.alerts' }, field: 'topic', code: 'RESERVED_TOPIC' },
  { label: 'an 80 KB payload', event: { ...valid, payload: { a: 'x'.repeat(80_000) } }, field: 'payload', code: 'TOO_LARGE' },
  { label: 'a tenant with a NUL character', event: { ...valid, tenant: 'acme\u0000' }, field: 'tenant', code: 'CONTROL_CHARACTER' },
];

describe('enqueueOutboxEvent validates before it writes', () => {
  it.each(REFUSED)('refuses $label before the INSERT: the business write still commits', async ({ event, field, code }) => {
    const pool = await setUp();
    const client = await pool.connect();
    let refused: unknown;
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE orders SET status = 'paid' WHERE id = 1`);
      refused = await enqueueOutboxEvent(client, event).then(
        () => undefined,
        (error: unknown) => error,
      );
      // The transaction is still usable: nothing reached Postgres.
      await enqueueOutboxEvent(client, valid);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(refused).toBeInstanceOf(InvalidOutboxEventError);
    expect(refused).toBeInstanceOf(TypeError);
    expect(refused).toMatchObject({ field, code, name: 'InvalidOutboxEventError' });
    expect((refused as Error).message).toContain(field);
    expect((await pool.query('SELECT status FROM orders WHERE id = 1')).rows).toEqual([{ status: 'paid' }]);
    const rows = await pool.query<{ topic: string; payload: unknown }>('SELECT topic, payload FROM event_outbox');
    expect(rows.rows).toEqual([{ topic: 'orders.paid', payload: { orderId: 1 } }]);
  });

  it('writes what passes at the limits, and the stored payload measures what the SDK measured', async () => {
    const pool = await setUp();
    // Multi-byte text, a whole emoji (a surrogate pair) in a key and a value, numbers jsonb rewrites
    // (1.0, 1e21), nesting exactly 100 levels deep: JSON's bytes as Tributary measures them,
    // JSON.stringify of the payload read back, must be the SDK's measure.
    let deep: Record<string, unknown> = { leaf: true };
    for (let level = 2; level < 100; level += 1) deep = { d: deep };
    const base = { text: 'Grüße, 注文 😀', ['😀']: 1.0, big: 1e21, small: -0, list: [null, true, 'a'], deep };
    const baseBytes = Buffer.byteLength(JSON.stringify(base));
    const limit = 65_536;
    const payload = { ...base, fill: 'x'.repeat(limit - baseBytes - ',"fill":""'.length) };
    expect(Buffer.byteLength(JSON.stringify(payload))).toBe(limit);
    const event: OutboxEventInput = {
      topic: 'orders.paid',
      type: 'order.paid',
      payload,
      tenant: 't'.repeat(200),
      entity: '注'.repeat(341),
      table: 'orders',
      operation: 'update',
    };
    const id = await enqueueOutboxEvent(pool, event, { maxPayloadBytes: limit });
    const stored = await pool.query<{ payload: Record<string, unknown>; tenant: string; entity: string }>('SELECT payload, tenant, entity FROM event_outbox WHERE id = $1', [id]);
    const row = stored.rows[0]!;
    expect(Buffer.byteLength(JSON.stringify(row.payload))).toBe(limit);
    expect(row.payload).toEqual(JSON.parse(JSON.stringify(payload)));
    expect([row.tenant.length, Buffer.byteLength(row.entity)]).toEqual([200, 1_023]);
    // One byte more is refused, with the limit in the message.
    await expect(enqueueOutboxEvent(pool, { ...event, payload: { ...payload, fill: `${payload.fill}x` } }, { maxPayloadBytes: limit })).rejects.toThrow(
      /payload is 65537 bytes of JSON; the limit is 65536/,
    );
  });
});
