/**
 * The outbox in WAL mode routes a row as its transaction committed it, as POLL mode (which reads
 * the committed table) does: an UPDATE or DELETE of the row later in the transaction that inserted
 * it — the ORM pattern of insert-then-update — counts, also across the chunks of a large
 * transaction and over a TOASTed payload the UPDATE did not send again. Each case runs against a
 * WAL outbox and a POLL outbox of one server, and both must deliver the same.
 */
import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { eventOf } from '../helpers/events.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const SERVER_ENV = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', OUTBOX_POLL_INTERVAL_MS: '50' };
const SET_OUTBOX = `mutation($url: String!, $mode: OutboxMode) { setOutboxSource(databaseUrl: $url, createTable: true, mode: $mode) { mode } }`;
const TENANTS = ['a', 'b'] as const;
type Tenant = (typeof TENANTS)[number];
type Mode = 'WAL' | 'POLL';

/** One outbox of the server, in its own database and app, with a subscriber of `orders` per tenant. */
interface Outbox {
  readonly mode: Mode;
  readonly pool: pg.Pool;
  readonly subscribers: Readonly<Record<Tenant, RawSocket>>;
}

async function openOutbox(server: TestServer, mode: Mode): Promise<Outbox> {
  const db = await createTestDatabase();
  const pool = openTestPool(db.url);
  const app = `${mode.toLowerCase()}app`;
  const set = await gql(server, await signHs256({ app, roles: ['admin'], tenant: undefined, permissions: [] }), SET_OUTBOX, { url: db.url, mode });
  expect(set.data).toEqual({ setOutboxSource: { mode } });
  const subscribers = {} as Record<Tenant, RawSocket>;
  for (const tenant of TENANTS) {
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ app, tenant, permissions: ['orders.read'] }));
    const before = server.stats().subscribers;
    client.send({ id: 'o', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { type payload } }' } });
    await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });
    subscribers[tenant] = client;
  }
  const outbox = { mode, pool, subscribers };
  // Routed once the outbox reads its table: whatever is written next is read from the WAL (in WAL
  // mode), not caught up from the table, which would show the committed rows either way.
  await insertRow(pool, 'ready', 'a', {});
  expect(await delivered(outbox, 'a')).toEqual(['order.ready {}']);
  return outbox;
}

/** Inserts an outbox row of entity `order:1` (one POLL partition: rows in id order), returning its id. */
async function insertRow(db: pg.Pool | pg.PoolClient, kind: string, tenant: Tenant, payload: object, topic = 'orders'): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO event_outbox (topic, event_type, payload, tenant, entity) VALUES ($1, $2, $3, $4, 'order:1') RETURNING id::text AS id`,
    [topic, `order.${kind}`, JSON.stringify(payload), tenant],
  );
  return rows[0]!.id;
}

/** Runs `work` in one transaction of `pool`. */
async function inTransaction(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await work(client);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/**
 * What `tenant`'s subscriber received, as `type payload`, up to and without the marker row this
 * writes last (same entity, so it comes after every row written before it, in both modes).
 */
async function delivered(outbox: Outbox, tenant: Tenant): Promise<string[]> {
  await insertRow(outbox.pool, 'marker', tenant, {});
  const received: string[] = [];
  for (;;) {
    const { type, payload } = eventOf(await outbox.subscribers[tenant].nextMessage());
    if (type === 'order.marker') return received;
    received.push(`${type} ${JSON.stringify(payload, shortBlob)}`);
  }
}

/** A long `blob` as its length and digest: the comparison still holds, and a failure stays readable. */
function shortBlob(key: string, value: unknown): unknown {
  return key === 'blob' && typeof value === 'string' ? `${value.length} chars, sha256 ${createHash('sha256').update(value).digest('hex').slice(0, 16)}` : value;
}

/** Every tenant's deliveries after `scenario` ran against each outbox; WAL's must equal POLL's. */
async function inBothModes(scenario: (pool: pg.Pool) => Promise<void>): Promise<Record<Tenant, string[]>> {
  const server = await startTestServer(SERVER_ENV);
  const results: Partial<Record<Mode, Record<Tenant, string[]>>> = {};
  for (const mode of ['WAL', 'POLL'] as const) {
    const outbox = await openOutbox(server, mode);
    await scenario(outbox.pool);
    results[mode] = { a: await delivered(outbox, 'a'), b: await delivered(outbox, 'b') };
  }
  expect(results.WAL).toEqual(results.POLL);
  return results.WAL!;
}

describe('the outbox in WAL mode, rows changed in the transaction that inserted them', () => {
  it('routes a row as committed: its payload and tenant as last updated, nothing for a row deleted — as POLL mode does', { timeout: 120_000 }, async () => {
    // Over 2 kB even compressed: stored out of line, so an UPDATE that leaves it alone does not send it.
    const blob = randomBytes(15_000).toString('base64');
    const got = await inBothModes(async (pool) => {
      await inTransaction(pool, async (tx) => {
        const id = await insertRow(tx, 'payload', 'a', { v: 'as inserted' });
        await tx.query(`UPDATE event_outbox SET payload = '{"v": "as committed"}' WHERE id = $1`, [id]);
      });
      await inTransaction(pool, async (tx) => {
        const id = await insertRow(tx, 'tenant', 'a', { v: 1 });
        await tx.query(`UPDATE event_outbox SET tenant = 'b' WHERE id = $1`, [id]);
      });
      await inTransaction(pool, async (tx) => {
        const id = await insertRow(tx, 'deleted', 'a', { v: 'cancelled' });
        await tx.query('DELETE FROM event_outbox WHERE id = $1', [id]);
      });
      await inTransaction(pool, async (tx) => {
        const id = await insertRow(tx, 'toasted', 'a', { blob });
        await tx.query(`UPDATE event_outbox SET tenant = 'b', event_type = 'order.toasted-moved' WHERE id = $1`, [id]);
      });
    });
    expect(got).toEqual({
      a: ['order.payload {"v":"as committed"}'],
      b: ['order.tenant {"v":1}', `order.toasted-moved ${JSON.stringify({ blob }, shortBlob)}`],
    });
  });

  it('folds an UPDATE or DELETE in a later chunk of a large transaction onto the row an earlier chunk inserted', { timeout: 120_000 }, async () => {
    // 1,500 updates of one row: the transaction reaches the reader in chunks of 1,000 changes.
    const updateManyTimes = (tx: pg.PoolClient, id: string) =>
      tx.query(`DO $$ BEGIN FOR i IN 1..1500 LOOP UPDATE event_outbox SET payload = jsonb_build_object('v', i) WHERE id = ${Number(id)}; END LOOP; END $$`);
    const got = await inBothModes(async (pool) => {
      await inTransaction(pool, async (tx) => {
        const id = await insertRow(tx, 'chunked', 'a', { v: 0 });
        await updateManyTimes(tx, id);
        await tx.query(`UPDATE event_outbox SET tenant = 'b' WHERE id = $1`, [id]);
        const gone = await insertRow(tx, 'chunked-deleted', 'a', { v: 0 });
        await updateManyTimes(tx, gone);
        await tx.query('DELETE FROM event_outbox WHERE id = $1', [gone]);
      });
    });
    expect(got).toEqual({ a: [], b: ['order.chunked {"v":1500}'] });
  });

  it('leaves a row routed by an earlier transaction as it was routed, whatever a later one does to it', { timeout: 120_000 }, async () => {
    const server = await startTestServer(SERVER_ENV);
    const outbox = await openOutbox(server, 'WAL');
    const id = await insertRow(outbox.pool, 'earlier', 'a', { v: 'as committed' });
    expect(await delivered(outbox, 'a')).toEqual(['order.earlier {"v":"as committed"}']);
    await inTransaction(outbox.pool, async (tx) => {
      await tx.query(`UPDATE event_outbox SET payload = '{"v": "updated later"}', tenant = 'b' WHERE id = $1`, [id]);
      await tx.query('DELETE FROM event_outbox WHERE id = $1', [id]);
    });
    expect({ a: await delivered(outbox, 'a'), b: await delivered(outbox, 'b') }).toEqual({ a: [], b: [] });
  });

  it('routes a row early, as it stands, once 1,000 more rows were inserted after it in its transaction', { timeout: 120_000 }, async () => {
    const server = await startTestServer(SERVER_ENV);
    const outbox = await openOutbox(server, 'WAL');
    await inTransaction(outbox.pool, async (tx) => {
      const first = await insertRow(tx, 'first', 'a', { v: 'as inserted' });
      await tx.query(
        `INSERT INTO event_outbox (topic, event_type, payload, entity) SELECT 'fillers', 'order.filler', '{}', 'order:2' FROM generate_series(1, 1000)`,
      );
      await tx.query(`UPDATE event_outbox SET payload = '{"v": "updated"}' WHERE id = $1`, [first]);
      const last = await insertRow(tx, 'last', 'a', { v: 'as inserted' });
      await tx.query(`UPDATE event_outbox SET payload = '{"v": "as committed"}' WHERE id = $1`, [last]);
    });
    // The limit on what one transaction holds back (README, "The outbox"): POLL mode would route
    // the first row as updated.
    expect(await delivered(outbox, 'a')).toEqual(['order.first {"v":"as inserted"}', 'order.last {"v":"as committed"}']);
  });
});
