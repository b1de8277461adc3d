/**
 * TRUNCATE of mapped tables, end to end (real source database with logical WAL, servers, sockets):
 * Postgres sends no rows of a TRUNCATE, so `changes` subscribers of the models mapped to the table
 * learn that their state is invalid the way they learn of lost history — RESYNC_REQUIRED, live
 * and on a resume from a cursor taken before it — and start again from `records`. A TRUNCATE of
 * a table no mapping reads changes nothing.
 */
import { describe, expect, it } from 'vitest';
import {
  CONTACTS_MAPPING,
  gql,
  insertContact,
  nextChange,
  saveMappingOk,
  sendChanges,
  setUpCdc,
  socketFor,
  type CdcSetup,
} from '../helpers/cdc.ts';
import { configureSource, openPool, readerStatus, waitUntilLeading } from '../helpers/cdc-resilience.ts';
import { expectSubscriptionError, messagesBeforePong } from '../helpers/events.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const READ = { permissions: ['crm.contacts.read'] };
const RECORDS = '{ records(model: "contacts") { nodes { id record } cursor } }';

/** Sends `changes` as `id` on `client` and waits until `server` counts it. */
async function follow(server: TestServer, client: RawSocket, id: string, after?: string): Promise<void> {
  const before = server.stats().subscribers;
  sendChanges(client, id, { m: 'contacts', ...(after !== undefined && { a: after }) });
  await waitFor(() => server.stats().subscribers === before + 1, { message: `subscription ${id} is registered` });
}

async function records(server: TestServer, tenant: string): Promise<{ nodes: { id: string; record: Record<string, unknown> }[]; cursor: string }> {
  const body = await gql(server, await signHs256({ tenant, ...READ }), RECORDS);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['records'] as { nodes: { id: string; record: Record<string, unknown> }[]; cursor: string };
}

async function contactsSetUp(): Promise<CdcSetup> {
  const setup = await setUpCdc();
  await saveMappingOk(setup, CONTACTS_MAPPING);
  return setup;
}

describe('CDC: TRUNCATE of a mapped table', () => {
  it('ends the subscriptions holding a position with RESYNC_REQUIRED, refuses older cursors, and streams normally from a cursor taken after it', async () => {
    const setup = await contactsSetUp();
    const { server } = setup;
    const a = await socketFor(setup, { tenant: 'a', ...READ });
    await follow(server, a, 'live');
    await insertContact(setup, 'a', 'Ann');
    const ann = await nextChange(a, 'live');
    expect(ann).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });
    // Tenant b joined from its snapshot: it holds a position, and the rows of that snapshot.
    await insertContact(setup, 'b', 'Bea');
    await waitFor(async () => (await records(server, 'b')).nodes.length === 1, { message: "b's row is listed" });
    const b = await socketFor(setup, { tenant: 'b', ...READ });
    await follow(server, b, 'snapshot', (await records(server, 'b')).cursor);

    await setup.source.query('TRUNCATE contacts');
    await expectSubscriptionError(a, 'live', 'RESYNC_REQUIRED');
    await expectSubscriptionError(b, 'snapshot', 'RESYNC_REQUIRED');

    // A cursor from before the TRUNCATE: its rows are gone, so it cannot be resumed.
    sendChanges(a, 'old', { m: 'contacts', a: ann.cursor });
    await expectSubscriptionError(a, 'old', 'RESYNC_REQUIRED');

    // Starting again from `records`: the table as it is, and every later change.
    const now = await records(server, 'a');
    expect(now.nodes).toEqual([]);
    await follow(server, a, 'again', now.cursor);
    await insertContact(setup, 'a', 'Cy');
    const cy = await nextChange(a, 'again');
    expect(cy).toMatchObject({ operation: 'CREATED', record: { name: 'Cy', tenant_id: 'a' } });
    // A cursor taken after the TRUNCATE resumes.
    await insertContact(setup, 'a', 'Dee');
    expect(await nextChange(a, 'again')).toMatchObject({ operation: 'CREATED', record: { name: 'Dee' } });
    sendChanges(a, 'resumed', { m: 'contacts', a: cy.cursor });
    expect(await nextChange(a, 'resumed')).toMatchObject({ operation: 'CREATED', record: { name: 'Dee' } });
    expect(await messagesBeforePong(a)).toEqual([]);
    expect(await messagesBeforePong(b)).toEqual([]);
  });

  it('keeps the order of a transaction: a change before the TRUNCATE comes before the end of the history, a change after it never in the old one', async () => {
    const setup = await contactsSetUp();
    const { server } = setup;
    const a = await socketFor(setup, { tenant: 'a', ...READ });
    await follow(server, a, 'live');
    await insertContact(setup, 'a', 'Ann');
    expect(await nextChange(a, 'live')).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });

    const client = await setup.source.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Gone')`);
      await client.query('TRUNCATE contacts');
      await client.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Kept')`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    // The change before the TRUNCATE in the old history, then the end of it; never the change after it.
    expect(await nextChange(a, 'live')).toMatchObject({ operation: 'CREATED', record: { name: 'Gone' } });
    await expectSubscriptionError(a, 'live', 'RESYNC_REQUIRED');
    const now = await records(server, 'a');
    expect(now.nodes.map((node) => node.record['name'])).toEqual(['Kept']);
    await follow(server, a, 'again', now.cursor);
    await insertContact(setup, 'a', 'Later');
    expect(await nextChange(a, 'again')).toMatchObject({ operation: 'CREATED', record: { name: 'Later' } });
    expect(await messagesBeforePong(a)).toEqual([]);
  });

  it('ends the subscriptions of a table truncated by CASCADE, and of a partitioned table truncated at its root', async () => {
    const setup = await contactsSetUp();
    const { server, source } = setup;
    await source.query('CREATE TABLE accounts (id int PRIMARY KEY)');
    await source.query('ALTER TABLE contacts ADD COLUMN account_id int REFERENCES accounts (id)');
    await source.query(`CREATE TABLE orders (id int NOT NULL, tenant_id text NOT NULL, total int, PRIMARY KEY (tenant_id, id)) PARTITION BY LIST (tenant_id)`);
    await source.query(`CREATE TABLE orders_a PARTITION OF orders FOR VALUES IN ('a')`);
    await source.query(`CREATE TABLE orders_rest PARTITION OF orders DEFAULT`);
    await saveMappingOk(setup, { name: 'orders', table: 'orders', events: ['insert', 'update', 'delete'], topic: 'crm.order-events', module: 'crm', model: 'orders', tenantColumn: 'tenant_id' });
    const a = await socketFor(setup, { tenant: 'a', permissions: ['crm.read'] });
    await follow(server, a, 'contacts');
    const beforeOrders = server.stats().subscribers;
    a.send({ id: 'orders', type: 'subscribe', payload: { query: 'subscription { changes(model: "orders") { operation id record cursor } }' } });
    await waitFor(() => server.stats().subscribers === beforeOrders + 1, { message: 'orders subscription is registered' });
    await source.query(`INSERT INTO accounts (id) VALUES (1)`);
    await source.query(`INSERT INTO contacts (tenant_id, status, name, account_id) VALUES ('a', 'lead', 'Ann', 1)`);
    expect(await nextChange(a, 'contacts')).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });
    await source.query(`INSERT INTO orders (id, tenant_id, total) VALUES (1, 'a', 10)`);
    expect(await nextChange(a, 'orders')).toMatchObject({ operation: 'CREATED', record: { id: 1, total: 10 } });

    await source.query('TRUNCATE accounts CASCADE');
    await expectSubscriptionError(a, 'contacts', 'RESYNC_REQUIRED');
    await source.query('TRUNCATE orders');
    await expectSubscriptionError(a, 'orders', 'RESYNC_REQUIRED');
    expect(await messagesBeforePong(a)).toEqual([]);
  });

  it('changes nothing for a TRUNCATE of a table no mapping reads', async () => {
    const setup = await contactsSetUp();
    const { server, source } = setup;
    await source.query('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
    await source.query(`INSERT INTO notes (body) VALUES ('x')`);
    const a = await socketFor(setup, { tenant: 'a', ...READ });
    await follow(server, a, 'live');
    await insertContact(setup, 'a', 'Ann');
    const ann = await nextChange(a, 'live');

    await source.query('TRUNCATE notes');
    await insertContact(setup, 'a', 'Bob');
    expect(await nextChange(a, 'live')).toMatchObject({ operation: 'CREATED', record: { name: 'Bob' } });
    sendChanges(a, 'resumed', { m: 'contacts', a: ann.cursor });
    expect(await nextChange(a, 'resumed')).toMatchObject({ operation: 'CREATED', record: { name: 'Bob' } });
    expect(await messagesBeforePong(a)).toEqual([]);
    expect((await records(server, 'a')).nodes.map((node) => node.record['name'])).toEqual(['Ann', 'Bob']);
  });

  it('ends the subscriptions on an instance that does not read the source (Redis)', { timeout: 60_000 }, async () => {
    const source = await createTestDatabase();
    const platform = await createTestDatabase();
    const pool = openPool(source.url);
    await pool.query(`CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)`);
    await pool.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
    const env = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    const leader = await startTestServer(env);
    await configureSource(leader, source.url, CONTACTS_MAPPING);
    await waitUntilLeading(leader);
    const follower = await startTestServer(env);
    await waitFor(async () => (await readerStatus(follower))?.leading === false, { message: 'the follower knows the source' });
    const client = await openAcknowledgedSocket(follower.wsUrl, await signHs256({ tenant: 'a', ...READ }));
    await follow(follower, client, 'live');
    await pool.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Ann')`);
    expect(await nextChange(client, 'live')).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });

    await pool.query('TRUNCATE contacts');
    await expectSubscriptionError(client, 'live', 'RESYNC_REQUIRED');
    const now = await records(follower, 'a');
    expect(now.nodes).toEqual([]);
    await follow(follower, client, 'again', now.cursor);
    await pool.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Bob')`);
    expect(await nextChange(client, 'again')).toMatchObject({ operation: 'CREATED', record: { name: 'Bob' } });
  });
});
