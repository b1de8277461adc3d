/**
 * The outbox in WAL mode, end to end: the CDC reader of the outbox's database routes its inserts
 * from the WAL. Commit order per entity with concurrent writers, nothing from a rolled-back
 * transaction, routed rows cleaned up; rows written before the outbox is set (or while no reader
 * runs) caught up from the table, each once; the same event as POLL mode for the same row; one
 * slot shared with the database's CDC source (its custom publication gets the table); two apps
 * sharing a database under their own logins each read the table their own login names; AUTO
 * settling on POLL for a role that cannot replicate.
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { decodeCursor, encodeCursor } from '../../src/pipeline/log/cursor.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { gql } from '../helpers/cdc.ts';
import { eventOf, type DeliveredEvent } from '../helpers/events.ts';
import { createTestDatabase, uniqueName, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { useTimeZone } from '../helpers/time-zone.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const SERVER_ENV = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', OUTBOX_POLL_INTERVAL_MS: '50' };
const FIELDS = 'id topic source type payload metadata { table operation }';
const SET_OUTBOX = `mutation($url: String!, $mode: OutboxMode, $requireTenant: Boolean) {
  setOutboxSource(databaseUrl: $url, createTable: true, mode: $mode, requireTenant: $requireTenant) { mode }
}`;

type OutboxEvent = Omit<DeliveredEvent, 'cursor' | 'metadata'> & { readonly metadata: { readonly table: string | null; readonly operation: string | null } };

function openPool(url: string, max = 4): pg.Pool {
  return openTestPool(url, { max });
}

async function admin(): Promise<string> {
  return signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
}

async function setOutbox(server: TestServer, url: string, mode: 'AUTO' | 'POLL' | 'WAL', requireTenant = false) {
  return gql(server, await admin(), SET_OUTBOX, { url, mode, requireTenant });
}

/** A reader of the orders topic, of `tenant` or none (the claim is left out, not defaulted). */
const ordersReader = (tenant?: string) => signHs256({ tenant, permissions: ['orders.read'] });

/** A subscriber of `orders`: of tenant `tenant`'s rows, or of the rows without one; from `after` when given. */
async function subscribeOrders(server: TestServer, tenant?: string, after?: string): Promise<RawSocket> {
  const client = await openAcknowledgedSocket(server.wsUrl, await ordersReader(tenant));
  const before = server.stats().subscribers;
  const from = after === undefined ? '' : `, after: ${JSON.stringify(after)}`;
  client.send({ id: 'o', type: 'subscribe', payload: { query: `subscription { events(topic: "orders"${from}) { ${FIELDS} } }` } });
  await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });
  return client;
}

/**
 * The start of the orders stream in `server`'s log (position 0 of its epoch): subscribed with it,
 * a client gets every event the server routed, also those routed before it subscribed — a reader
 * that catches up from the table as the server starts may route them first.
 */
async function ordersStart(server: TestServer): Promise<string> {
  const head = (await gql(server, await ordersReader(), '{ topicCursor(topic: "orders") }')).data?.['topicCursor'];
  if (typeof head !== 'string') throw new Error('no topicCursor');
  return encodeCursor(decodeCursor(head).epoch, '0');
}

/**
 * The next `count` events. Not all of them within `timeoutMs` (below the test's own timeout) fails
 * with what did arrive, per entity — a lost row and a slow restart look different there.
 */
async function take(client: RawSocket, count: number, timeoutMs = 90_000): Promise<OutboxEvent[]> {
  const events: OutboxEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const seqs = new Map<string, number[]>();
      for (const { payload } of events) seqs.set(String(payload['entity']), [...(seqs.get(String(payload['entity'])) ?? []), Number(payload['seq'])]);
      const arrived = [...seqs].map(([entity, list]) => `${entity}: ${list.join(',')}`).join('; ');
      reject(new Error(`${events.length} of ${count} events within ${timeoutMs} ms — arrived ${arrived || 'none'}`));
    }, timeoutMs);
  });
  const reading = (async () => {
    while (events.length < count) events.push(eventOf(await client.nextMessage()) as unknown as OutboxEvent);
  })();
  // Left reading when late: the socket's close at the end of the test ends it.
  reading.catch(() => undefined);
  try {
    await Promise.race([reading, late]);
  } finally {
    clearTimeout(timer);
  }
  return events;
}

/** Each event once (by id), and per entity the `seq` of its payloads strictly increasing. */
function expectOnceInOrder(events: readonly OutboxEvent[], expected: number): void {
  expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
  expect(events).toHaveLength(expected);
  const last = new Map<string, number>();
  for (const { payload } of events) {
    const entity = String(payload['entity']);
    const seq = Number(payload['seq']);
    expect(seq, `entity ${entity}`).toBeGreaterThan(last.get(entity) ?? -1);
    last.set(entity, seq);
  }
}

/**
 * `rows` rows per entity `e0…e{entities-1}` (seq `from`…), each entity written by one of `writers`
 * concurrent writers, one transaction per row; of tenant `tenant`, or none.
 */
async function writeConcurrently(pool: pg.Pool, entities: number, rows: number, writers: number, from = 0, tenant?: string): Promise<void> {
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      for (let seq = from; seq < from + rows; seq += 1) {
        for (let entity = writer; entity < entities; entity += writers) {
          await enqueueOutboxEvent(pool, { topic: 'orders', type: 'order.updated', payload: { entity: `e${entity}`, seq }, entity: `order:e${entity}`, tenant });
        }
      }
    }),
  );
}

async function pendingRows(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ count: string }>('SELECT count(*) FROM event_outbox WHERE processed_at IS NULL');
  return Number(rows[0]!.count);
}

describe('the outbox in WAL mode', () => {
  it('routes concurrent writers’ rows once each, in commit order per entity, nothing rolled back; routed rows are deleted, dead ones kept', { timeout: 120_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openPool(appDb.url, 6);
    const server = await startTestServer(SERVER_ENV);
    const set = await setOutbox(server, appDb.url, 'WAL', true);
    expect(set.errors).toBeUndefined();
    expect(set.data).toEqual({ setOutboxSource: { mode: 'WAL' } });
    const client = await subscribeOrders(server, 'a');

    const rolledBack = await app.connect();
    await rolledBack.query('BEGIN');
    await enqueueOutboxEvent(rolledBack, { topic: 'orders', type: 'order.updated', payload: { entity: 'e0', seq: -1 }, entity: 'order:e0', tenant: 'a' });
    await rolledBack.query('ROLLBACK');
    rolledBack.release();
    // A tenant-less row of a source that requires a tenant is set aside, and the rows after it flow.
    await app.query(`INSERT INTO event_outbox (topic, event_type, payload, tenant, entity) VALUES ('orders', 'x', '{}', 'tenant-z', 'order:e0')`);
    const tenantless = await app.query<{ id: string }>(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('orders', 'x', '{}') RETURNING id::text AS id`);

    await writeConcurrently(app, 40, 25, 4, 0, 'a');
    const events = await take(client, 1000);
    expectOnceInOrder(events, 1000);
    expect(events[0]).toMatchObject({ topic: 'orders', source: 'DATABASE', type: 'order.updated' });

    // Routed rows leave the table; the dead one stays, with its reason, until the retention.
    await waitFor(async () => (await app.query('SELECT 1 FROM event_outbox WHERE dead_reason IS NULL')).rowCount === 0, {
      timeoutMs: 20_000,
      message: 'routed rows deleted',
    });
    const { rows } = await app.query<{ id: string; dead_reason: string }>('SELECT id::text AS id, dead_reason FROM event_outbox');
    expect(rows).toEqual([{ id: tenantless.rows[0]!.id, dead_reason: 'tenant missing' }]);
  });

  it('catches up rows written before the outbox is set and while its reader starts, each once and in order', { timeout: 120_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openPool(appDb.url, 6);
    const server = await startTestServer(SERVER_ENV);
    // The table exists and holds a backlog before the outbox is set.
    await app.query(outboxTableDdl(outboxTable('event_outbox')));
    await writeConcurrently(app, 20, 10, 2);
    const client = await subscribeOrders(server);

    // More rows are written while the WAL reader starts: some reach both the catch-up and the WAL.
    const writing = writeConcurrently(app, 20, 15, 4, 10);
    expect((await setOutbox(server, appDb.url, 'WAL')).errors).toBeUndefined();
    await writing;
    const events = await take(client, 500);
    expectOnceInOrder(events, 500);
    await waitFor(async () => (await pendingRows(app)) === 0, { timeoutMs: 20_000, message: 'every row cleaned up' });

    // Nothing more is on its way: a marker is the next event.
    await enqueueOutboxEvent(app, { topic: 'orders', type: 'marker', payload: {} });
    expect((await take(client, 1))[0]).toMatchObject({ type: 'marker' });
  });

  it('routes rows written while no reader runs when one comes back, each once', { timeout: 120_000 }, async () => {
    const platform = await createTestDatabase();
    const appDb = await createTestDatabase();
    const app = openPool(appDb.url, 6);
    const env = { ...SERVER_ENV, DATABASE_URL: platform.url };
    const first = await startTestServer(env, { autoDispose: false });
    expect((await setOutbox(first, appDb.url, 'WAL')).errors).toBeUndefined();
    const firstClient = await subscribeOrders(first);
    await writeConcurrently(app, 10, 5, 2);
    expectOnceInOrder(await take(firstClient, 50), 50);
    firstClient.socket.close();
    await first.dispose();

    // Written while down: in the WAL after the slot's position, and pending in the table.
    await writeConcurrently(app, 10, 5, 2, 5);
    const second = await startTestServer(env);
    // From the start of its log: its reader may route the rows written while down before this subscribes.
    const client = await subscribeOrders(second, undefined, await ordersStart(second));
    await writeConcurrently(app, 10, 5, 2, 10);
    const events = await take(client, 100);
    expectOnceInOrder(events, 100);
    expect(Math.min(...events.map((event) => Number(event.payload['seq'])))).toBe(5);
    await enqueueOutboxEvent(app, { topic: 'orders', type: 'marker', payload: {} });
    expect((await take(client, 1))[0]).toMatchObject({ type: 'marker' });
  });

  it.each(['timestamp with time zone', 'timestamp without time zone'])(
    'turns a row into the same event as POLL mode does: same id, payload, scope and metadata (created_at %s, a zone of its own)',
    { timeout: 120_000 },
    async (createdType) => {
      const platform = await createTestDatabase();
      const appDb = await createTestDatabase();
      const app = openPool(appDb.url);
      await app.query(outboxTableDdl(outboxTable('event_outbox')));
      await app.query(`ALTER TABLE event_outbox ALTER COLUMN created_at TYPE ${createdType}`);
      // The event id includes created_at: neither the sessions' zone (an odd offset, daylight saving
      // time), nor their date style (pgoutput prints values in the walsender's), nor the process's
      // zone, nor the microseconds (999: a rounding moves it) may change it.
      await app.query(`ALTER DATABASE ${appDb.name} SET TimeZone = 'America/St_Johns'`);
      await app.query(`ALTER DATABASE ${appDb.name} SET DateStyle = 'SQL, DMY'`);
      useTimeZone('Asia/Kathmandu');
      const env = { ...SERVER_ENV, DATABASE_URL: platform.url };
      const insertRows = (createdAt: string) =>
        app.query(`INSERT INTO event_outbox (id, topic, event_type, payload, entity, table_name, operation, created_at) VALUES
          (101, 'orders', 'order.created', '{"total": 10, "lines": [{"sku": "a", "qty": 2}], "note": null}', 'order:1', 'orders', 'insert', ${createdAt}),
          (102, 'orders', 'order.updated', '{"total": 12.5}', 'order:1', 'orders', 'update', ${createdAt}),
          (103, 'orders', 'order.deleted', '{}', NULL, NULL, NULL, ${createdAt})`);
      const CREATED = "'2024-03-31 01:30:00.123999+00'";

      const polling = await startTestServer(env, { autoDispose: false });
      expect((await setOutbox(polling, appDb.url, 'POLL')).data).toEqual({ setOutboxSource: { mode: 'POLL' } });
      const pollClient = await subscribeOrders(polling);
      await insertRows(CREATED);
      const polled = await take(pollClient, 3);
      // Switched before the next server starts, so its workers never poll this outbox.
      expect((await setOutbox(polling, appDb.url, 'WAL')).data).toEqual({ setOutboxSource: { mode: 'WAL' } });
      pollClient.socket.close();
      await polling.dispose();

      // The same rows again (same ids, same created_at), now read from the WAL: the outbox keeps its id across the mode change.
      await app.query('DELETE FROM event_outbox');
      const reading = await startTestServer(env);
      const walClient = await subscribeOrders(reading);
      await enqueueOutboxEvent(app, { topic: 'orders', type: 'marker', payload: {} });
      expect((await take(walClient, 1))[0]).toMatchObject({ type: 'marker' });
      await insertRows(CREATED);
      // Order is kept per entity only (POLL mode routes the entity-less row from another partition).
      const byType = (events: readonly OutboxEvent[]) => [...events].sort((a, b) => a.type.localeCompare(b.type));
      const [created, deleted, updated] = byType(polled);
      expect(byType(await take(walClient, 3))).toEqual([created, deleted, updated]);
      expect([created, deleted, updated].map((event) => event?.type)).toEqual(['order.created', 'order.deleted', 'order.updated']);
      expect(created).toMatchObject({ payload: { total: 10, lines: [{ sku: 'a', qty: 2 }], note: null }, metadata: { table: 'orders', operation: 'insert' } });

      // The table's ids restarted: rows with the same ids, created later, are other events.
      await waitFor(async () => (await app.query('SELECT 1 FROM event_outbox WHERE id >= 101')).rowCount === 0, { message: 'routed rows cleaned up' });
      await insertRows('now()');
      const again = await take(walClient, 3);
      expect(again.map((event) => event.id).filter((id) => polled.some((event) => event.id === id))).toEqual([]);
    },
  );

  it('shares the slot of the database’s CDC source and adds the table to its custom publication', { timeout: 120_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openPool(appDb.url);
    await app.query('CREATE TABLE contacts (id int PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL)');
    const publication = uniqueName();
    await app.query(`CREATE PUBLICATION ${publication} FOR TABLE contacts`);
    const server = await startTestServer(SERVER_ENV);
    const token = await admin();
    expect((await gql(server, token, 'mutation($url: String!, $p: String) { setCdcSource(databaseUrl: $url, publicationName: $p) { database } }', { url: appDb.url, p: publication })).errors).toBeUndefined();
    const mapping = { name: 'contacts', table: 'contacts', events: ['insert'], topic: 'crm.contact-events', module: 'crm', model: 'contacts' };
    expect((await gql(server, token, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: mapping })).errors).toBeUndefined();
    expect((await setOutbox(server, appDb.url, 'WAL')).errors).toBeUndefined();

    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: undefined, permissions: ['orders.read', 'crm.read'] }));
    client.send({ id: 'o', type: 'subscribe', payload: { query: `subscription { events(topic: "orders") { ${FIELDS} } }` } });
    client.send({ id: 'c', type: 'subscribe', payload: { query: `subscription { events(topic: "crm.contact-events") { ${FIELDS} } }` } });
    await waitFor(() => server.stats().subscribers === 2, { message: 'subscriptions dispatched' });
    await waitFor(async () => (await app.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'event_outbox'`, [publication])).rowCount === 1, {
      timeoutMs: 20_000,
      message: 'the outbox table joins the publication',
    });

    // One transaction: a business row and its outbox event; both arrive.
    const tx = await app.connect();
    await tx.query('BEGIN');
    await tx.query(`INSERT INTO contacts VALUES (1, 't', 'Ada')`);
    await enqueueOutboxEvent(tx, { topic: 'orders', type: 'contact.welcomed', payload: { contact: 1 } });
    await tx.query('COMMIT');
    tx.release();
    const received = [eventOf(await client.nextMessage()), eventOf(await client.nextMessage())].map((event) => event.topic).sort();
    expect(received).toEqual(['crm.contact-events', 'orders']);
    const { rows } = await app.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()');
    expect(rows).toHaveLength(1);
  });

  it('reads each app’s own table when two apps share a database, each with its own login and schema', { timeout: 120_000 }, async () => {
    const appDb = await createTestDatabase();
    const owner = openPool(appDb.url);
    // Each app's login finds `event_outbox` in its own schema ("$user" leads the search path); the
    // first one's URL is the database's (the reader's slot and publication are made on it).
    const apps = ['shopa', 'shopb'].map((app) => {
      const role = uniqueName(app);
      const url = new URL(appDb.url);
      url.username = role;
      url.password = 'pw';
      return { app, role, url: url.toString() };
    });
    for (const { role } of apps) {
      await owner.query(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD 'pw'`);
      onTestFinished(async () => {
        await owner.query(`DROP OWNED BY ${role} CASCADE`);
        await owner.query(`DROP ROLE ${role}`);
      });
      await owner.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
    }
    const server = await startTestServer(SERVER_ENV);
    const clients = new Map<string, RawSocket>();
    for (const { app, url } of apps) {
      const token = await signHs256({ app, roles: ['admin'], tenant: undefined, permissions: [] });
      expect((await gql(server, token, SET_OUTBOX, { url, mode: 'WAL' })).errors).toBeUndefined();
      const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ app, tenant: undefined, permissions: ['orders.read'] }));
      const before = server.stats().subscribers;
      client.send({ id: 'o', type: 'subscribe', payload: { query: `subscription { events(topic: "orders") { ${FIELDS} } }` } });
      await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });
      clients.set(app, client);
    }
    const tables = await owner.query<{ schema: string }>(`SELECT schemaname AS schema FROM pg_tables WHERE tablename = 'event_outbox' ORDER BY 1`);
    expect(tables.rows.map((row) => row.schema)).toEqual(apps.map((app) => app.role).sort());

    // Each app writes through its own login, unqualified, as its code does; the second app a poison row too.
    for (const { app, url } of apps) {
      const pool = openPool(url, 1);
      await enqueueOutboxEvent(pool, { topic: 'orders', type: 'order.created', payload: { from: app } });
      if (app === 'shopb') await pool.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('orders', 'x', '[1]')`);
      await enqueueOutboxEvent(pool, { topic: 'orders', type: 'marker', payload: { from: app } });
    }
    // Its own row, then its marker, and nothing of the other app's between them.
    for (const { app } of apps) {
      const events = await take(clients.get(app)!, 2, 30_000);
      expect(events.map((event) => [event.type, event.payload])).toEqual([
        ['order.created', { from: app }],
        ['marker', { from: app }],
      ]);
    }
    // Each table is cleaned up by its own reader, and each status measures its own table.
    for (const { app, role } of apps) {
      await waitFor(async () => (await owner.query(`SELECT 1 FROM ${role}.event_outbox WHERE dead_reason IS NULL`)).rowCount === 0, {
        timeoutMs: 20_000,
        message: `${app}'s routed rows deleted`,
      });
      const token = await signHs256({ app, roles: ['admin'], tenant: undefined, permissions: [] });
      const expected = { mode: 'WAL', pending: 0, dead: app === 'shopb' ? 1 : 0, lastError: null };
      await waitFor(async () => JSON.stringify((await gql(server, token, '{ outboxStatus { mode pending dead lastError } }')).data?.['outboxStatus']) === JSON.stringify(expected), {
        timeoutMs: 20_000,
        message: `${app}'s status`,
      });
    }
  });

  it('settles AUTO on POLL for a role that cannot replicate, and refuses WAL for it with MISCONFIGURED', { timeout: 60_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openPool(appDb.url);
    const role = uniqueName();
    await app.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw' NOREPLICATION`);
    onTestFinished(async () => {
      await app.query(`DROP OWNED BY ${role}`);
      await app.query(`DROP ROLE ${role}`);
    });
    await app.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
    const url = new URL(appDb.url);
    url.username = role;
    url.password = 'pw';
    const server = await startTestServer(SERVER_ENV);

    const wal = await setOutbox(server, url.toString(), 'WAL');
    expect(wal.errors?.[0]).toMatchObject({ extensions: { code: 'MISCONFIGURED', field: 'mode' } });
    expect(wal.errors?.[0]?.message).toContain('REPLICATION');
    const auto = await setOutbox(server, url.toString(), 'AUTO');
    expect(auto.errors).toBeUndefined();
    expect(auto.data).toEqual({ setOutboxSource: { mode: 'POLL' } });
    // And as the superuser of the test cluster, AUTO is WAL.
    expect((await setOutbox(server, appDb.url, 'AUTO')).data).toEqual({ setOutboxSource: { mode: 'WAL' } });
  });
});
