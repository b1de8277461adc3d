/**
 * A payload's size is that of its JSON, in every mode: jsonb prints a number in full (`1e-300` as
 * 302 characters), so a payload of 1,000 tiny numbers — 7 KB of JSON, what the SDK's
 * `enqueueOutboxEvent` measures and the WAL reader routes — is ~304 KB as jsonb text. POLL's claim
 * and WAL mode's catch-up read a payload over 4× the limit as jsonb text apart from the batch, and
 * set such a row aside as dead; they now load it on its own and judge its JSON, as the WAL's live
 * path does. A payload whose jsonb text is over the hard cap (64× the limit) is not loaded: dead,
 * with the usual reason.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { gql } from '../helpers/cdc.ts';
import { eventOf, takeUntil } from '../helpers/events.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { startOutboxPoller } from '../helpers/outbox-poller.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const LIMIT = 65_536;
const OVER_REASON = `payload over ${LIMIT} bytes`;

/** `{"n":[x,x,…]}`, `count` times the number literal `x`. */
const numbers = (count: number, literal: string) => `{"n":[${Array.from({ length: count }, () => literal).join(',')}]}`;
/** 7 KB of JSON; ~304 KB as jsonb text: over 4× the limit, under 64×. */
const TINY_NUMBERS = numbers(1_000, '1e-300');
/** Just under the limit as JSON, of what JSON.stringify prints longest as jsonb text (`5e-324`: 326 characters); under the cap. */
const WORST_FROM_JS = JSON.stringify({ n: Array.from({ length: 9_300 }, () => 5e-324) });
/** 8 KB of JSON (no JavaScript number prints so); ~5 MB as jsonb text: over the hard cap of 64× the limit. */
const OVER_CAP = numbers(1_000, '1e-5000');

/** A payload in short: its `seq`, or how many numbers it holds (a failure's diff stays readable). */
const shape = (payload: Record<string, unknown>) => (Array.isArray(payload['n']) ? `${payload['n'].length} numbers` : payload['seq']);

const INSERT = `INSERT INTO event_outbox (topic, event_type, payload, entity) VALUES ('orders', 'order.updated', $1::jsonb, $2)`;

/** The table in `pool`'s database, and its rows: entity, payload's jsonb text bytes, dead reason, in id order. */
async function tableOf(pool: pg.Pool) {
  const { rows } = await pool.query<{ entity: string; processed: boolean; dead_reason: string | null }>(
    'SELECT entity, processed_at IS NOT NULL AS processed, dead_reason FROM event_outbox ORDER BY id',
  );
  return rows;
}

describe('an outbox payload of many tiny numbers', () => {
  it('is small as JSON and large as jsonb text', async () => {
    const db = await createTestDatabase();
    const pool = openTestPool(db.url);
    const { rows } = await pool.query<{ tiny: number; worst: number; cap: number }>(
      'SELECT octet_length($1::jsonb::text) AS tiny, octet_length($2::jsonb::text) AS worst, octet_length($3::jsonb::text) AS cap',
      [TINY_NUMBERS, WORST_FROM_JS, OVER_CAP],
    );
    expect(Buffer.byteLength(JSON.stringify(JSON.parse(TINY_NUMBERS)))).toBeLessThan(LIMIT / 8);
    expect(rows[0]!.tiny).toBeGreaterThan(4 * LIMIT);
    expect(rows[0]!.tiny).toBeLessThan(64 * LIMIT);
    expect(Buffer.byteLength(WORST_FROM_JS)).toBeLessThanOrEqual(LIMIT);
    expect(Buffer.byteLength(WORST_FROM_JS)).toBeGreaterThan(LIMIT - 1_000);
    expect(rows[0]!.worst).toBeGreaterThan(46 * LIMIT);
    expect(rows[0]!.worst).toBeLessThan(64 * LIMIT);
    expect(rows[0]!.cap).toBeGreaterThan(64 * LIMIT);
  });

  it('is routed in POLL mode, in its place; one over the hard cap is dead', async () => {
    const dead: string[] = [];
    const { pool, poller, appended } = await startOutboxPoller('obx-numbers', { maxPayloadBytes: LIMIT, metrics: { routed: () => {}, dead: (reason) => dead.push(reason) } });

    // One entity: its events keep the rows' order.
    await pool.query(INSERT, ['{"seq":1}', 'order:1']);
    await pool.query(INSERT, [TINY_NUMBERS, 'order:1']);
    await pool.query(INSERT, ['{"seq":3}', 'order:1']);
    await pool.query(INSERT, [OVER_CAP, 'order:1']);
    await pool.query(INSERT, ['{"seq":5}', 'order:1']);
    await pool.query(INSERT, [WORST_FROM_JS, 'order:1']);

    await expect(poller.pollOnce()).resolves.toBe(6);
    expect(await tableOf(pool)).toEqual([
      { entity: 'order:1', processed: true, dead_reason: null },
      { entity: 'order:1', processed: true, dead_reason: null },
      { entity: 'order:1', processed: true, dead_reason: null },
      { entity: 'order:1', processed: true, dead_reason: OVER_REASON },
      { entity: 'order:1', processed: true, dead_reason: null },
      { entity: 'order:1', processed: true, dead_reason: null },
    ]);
    const payloads = appended.map((event) => event.payload);
    expect(payloads.map(shape)).toEqual([1, '1000 numbers', 3, 5, '9300 numbers']);
    expect(payloads[1]).toEqual(JSON.parse(TINY_NUMBERS));
    expect(payloads[4]).toEqual(JSON.parse(WORST_FROM_JS));
    expect(dead).toEqual([OVER_REASON]);
  });

  it('is routed by WAL mode’s catch-up and by its live path alike; one over the hard cap is dead', { timeout: 120_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', EVENT_MAX_PAYLOAD_BYTES: String(LIMIT) });
    // Written before the outbox is set: the catch-up reads them from the table.
    await app.query(outboxTableDdl(outboxTable('event_outbox')));
    await app.query(INSERT, ['{"seq":1}', 'order:1']);
    await app.query(INSERT, [TINY_NUMBERS, 'order:1']);
    await app.query(INSERT, [OVER_CAP, 'order:1']);
    await app.query(INSERT, ['{"seq":4}', 'order:1']);
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: undefined, permissions: ['orders.read'] }));
    const before = server.stats().subscribers;
    client.send({ id: 'o', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id topic source type payload metadata { table operation } } }' } });
    await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });

    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = await gql(server, admin, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: WAL) { mode } }', { url: appDb.url });
    expect(set.errors).toBeUndefined();
    // Caught up: only dead rows are left in the table (routed ones are deleted).
    const caughtUp = async () => (await app.query('SELECT 1 FROM event_outbox WHERE dead_reason IS NULL')).rowCount === 0;
    await waitFor(caughtUp, { timeoutMs: 20_000, message: 'caught up' });

    // From the WAL, once caught up: the same row, the same fate.
    await app.query(INSERT, [TINY_NUMBERS, 'order:2']);
    await app.query(INSERT, ['{"seq":6}', 'order:2']);
    const taken = await takeUntil(client, (message) => eventOf(message).payload['seq'] === 6);
    const payloads = taken.map((message) => eventOf(message).payload);
    expect(payloads.map(shape)).toEqual([1, '1000 numbers', 4, '1000 numbers', 6]);
    expect(payloads[1]).toEqual(JSON.parse(TINY_NUMBERS));
    expect(payloads[3]).toEqual(JSON.parse(TINY_NUMBERS));

    // Routed rows are deleted; the dead one stays, with its reason.
    await waitFor(caughtUp, { timeoutMs: 20_000, message: 'routed rows deleted' });
    expect(await tableOf(app)).toEqual([{ entity: 'order:1', processed: true, dead_reason: OVER_REASON }]);
  });
});
