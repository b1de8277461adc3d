import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defaultReplicationNames, identifyDatabase } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { CONTACTS_MAPPING, gql, nextChange, saveMapping, setUpCdc, socketFor, subscribeChanges, takeMessages, type CdcSetup } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/*
 * Database CDC end to end: a source database of its own (logical WAL on the shared cluster), a
 * server with its own slot and publication, mappings saved over GraphQL, `changes` subscribers.
 */

describe('database CDC', () => {
  it('turns inserts, updates and deletes into model changes for the right tenant, filtered on the server', async () => {
    const setup = await setUpCdc();
    expect((await saveMapping(setup, CONTACTS_MAPPING)).errors).toBeUndefined();
    const subscribers = setup.server.stats().subscribers;
    const tenantA = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts' });
    const activeOfA = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts', f: { status: 'eq.active' } });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('b', 'active', 'Bob')`);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Ann')`);
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Ann'`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Ann'`);

    const created = await nextChange(tenantA);
    expect(created).toMatchObject({ operation: 'CREATED', model: 'contacts', record: { tenant_id: 'a', status: 'lead', name: 'Ann' } });
    expect(created.id).toBe(String(created.record?.['id']));
    expect(await nextChange(tenantA)).toMatchObject({ operation: 'UPDATED', id: created.id, record: { status: 'active' } });
    expect(await nextChange(tenantA)).toMatchObject({ operation: 'DELETED', id: created.id, record: { name: 'Ann' } });

    // The filtered one sees the update (status active) and the delete (the old row is active), not the lead insert.
    expect(await nextChange(activeOfA)).toMatchObject({ operation: 'UPDATED', id: created.id });
    expect(await nextChange(activeOfA)).toMatchObject({ operation: 'DELETED', id: created.id });
    // Nothing of tenant b reached tenant a.
    tenantA.send({ type: 'ping' });
    expect(await tenantA.nextMessage()).toEqual({ type: 'pong' });
  });

  it('tells a filtered subscription when a row leaves its filter (LEFT, without the record), not of inserts outside it', async () => {
    const setup = await setUpCdc();
    expect((await saveMapping(setup, CONTACTS_MAPPING)).errors).toBeUndefined();
    const subscribers = setup.server.stats().subscribers;
    const active = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts', f: { status: 'eq.active' } });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Lee')`); // outside: not told
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Ann')`);
    await setup.source.query(`UPDATE contacts SET status = 'archived' WHERE name = 'Ann'`); // leaves the filter
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Ann'`); // comes back
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Lee'`); // every delete is told (a soft delete's record may not match)
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Ann'`);

    const created = await nextChange(active);
    expect(created).toMatchObject({ operation: 'CREATED', record: { name: 'Ann', status: 'active' } });
    expect(await nextChange(active)).toMatchObject({ operation: 'LEFT', id: created.id, record: null });
    expect(await nextChange(active)).toMatchObject({ operation: 'UPDATED', id: created.id, record: { name: 'Ann', status: 'active' } });
    expect(await nextChange(active)).toMatchObject({ operation: 'DELETED', record: { name: 'Lee' } });
    expect(await nextChange(active)).toMatchObject({ operation: 'DELETED', id: created.id });
    active.send({ type: 'ping' });
    expect(await active.nextMessage()).toEqual({ type: 'pong' });
  });

  it('delivers a soft delete (the soft-delete column set) as DELETED and its clearing as CREATED, with operation delete on the topic (seed 004)', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts ADD COLUMN deleted_at timestamptz');
    expect((await saveMapping(setup, { ...CONTACTS_MAPPING, softDeleteColumn: 'deleted_at' })).errors).toBeUndefined();
    const subscribers = setup.server.stats().subscribers;
    const model = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts' });
    const topic = await socketFor(setup, { tenant: 'a', permissions: ['crm.read'] });
    topic.send({
      id: 'e',
      type: 'subscribe',
      payload: { query: 'subscription { events(topic: "crm.contact-events") { type metadata { operation } } }' },
    });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Ann')`);
    await setup.source.query(`UPDATE contacts SET deleted_at = now() WHERE name = 'Ann'`);
    await setup.source.query(`UPDATE contacts SET status = 'gone' WHERE name = 'Ann'`); // still soft-deleted: not announced
    await setup.source.query(`UPDATE contacts SET deleted_at = NULL WHERE name = 'Ann'`);
    await setup.source.query(`UPDATE contacts SET name = 'Anna' WHERE name = 'Ann'`);

    const created = await nextChange(model);
    expect(created).toMatchObject({ operation: 'CREATED', record: { name: 'Ann', deleted_at: null } });
    const softDeleted = await nextChange(model);
    expect(softDeleted).toMatchObject({ operation: 'DELETED', id: created.id, record: { name: 'Ann', status: 'lead' } });
    expect(softDeleted.record?.['deleted_at']).not.toBeNull();
    expect(await nextChange(model)).toMatchObject({ operation: 'CREATED', id: created.id, record: { status: 'gone', deleted_at: null } });
    expect(await nextChange(model)).toMatchObject({ operation: 'UPDATED', id: created.id, record: { name: 'Anna' } });

    const onTopic = await takeMessages(topic, 4);
    expect(onTopic.map((message) => (message.payload as { data: { events: unknown } }).data.events)).toEqual([
      { type: 'contacts.created', metadata: { operation: 'insert' } },
      { type: 'contacts.deleted', metadata: { operation: 'delete' } },
      { type: 'contacts.created', metadata: { operation: 'insert' } },
      { type: 'contacts.updated', metadata: { operation: 'update' } },
    ]);
  });

  it('refuses a tenant-routed delete mapping on a table without REPLICA IDENTITY FULL, saying how to fix it', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts REPLICA IDENTITY DEFAULT');
    const refused = await saveMapping(setup, CONTACTS_MAPPING);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(refused.errors?.[0]?.message).toContain('REPLICA IDENTITY FULL');
  });
});

/** `orders`, partitioned by region into `orders_eu` and `orders_us`, with its primary key (id, region). */
async function createOrders(pool: pg.Pool): Promise<void> {
  await pool.query('CREATE TABLE orders (id int NOT NULL, tenant_id text NOT NULL, region text NOT NULL, total int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)');
  await pool.query(`CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu')`);
  await pool.query(`CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us')`);
}

const ORDERS_MAPPING = { name: 'orders', table: 'orders', events: ['insert', 'update'], topic: 'shop.order-events', module: 'shop', model: 'orders', tenantColumn: 'tenant_id' };

/** A source database the test prepares with `prepare` before the server points its environment at it (`names`: setCdcSource's own). */
async function cdcOn(prepare: (pool: pg.Pool) => Promise<void>, names: { slotName: string; publicationName: string } | undefined = undefined): Promise<CdcSetup> {
  const database = await createTestDatabase();
  const source = openTestPool(database.url);
  await prepare(source);
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
  const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
  const set = await gql(server, admin, 'mutation($u: String!, $s: String, $p: String) { setCdcSource(databaseUrl: $u, slotName: $s, publicationName: $p) { database } }', {
    u: database.url,
    s: names?.slotName ?? null,
    p: names?.publicationName ?? null,
  });
  expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
  await waitFor(async () => ((await gql(server, admin, '{ cdcSource { status { state } } }')).data?.['cdcSource'] as { status: { state: string } }).status.state === 'streaming', {
    timeoutMs: 20_000,
    message: 'the CDC reader streams',
  });
  return { server, source, sourceUrl: database.url, admin };
}

/** Inserts an order into each partition and expects both as CREATED on `changes(model: "orders")` of tenant a. */
async function expectOrdersDelivered(setup: CdcSetup): Promise<void> {
  const subscribers = setup.server.stats().subscribers;
  const feed = await subscribeChanges(setup, { tenant: 'a', permissions: ['shop.orders.read'] }, { m: 'orders' });
  await waitFor(() => setup.server.stats().subscribers === subscribers + 1);
  await setup.source.query(`INSERT INTO orders VALUES (1, 'a', 'eu', 10), (2, 'a', 'us', 20)`);
  expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'CREATED', model: 'orders', id: '1/eu', record: { total: 10 } });
  expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'CREATED', model: 'orders', id: '2/us', record: { total: 20 } });
}

describe('CDC of partitioned tables', () => {
  it("delivers a partitioned table's changes under its own name: the publication Tributary creates publishes partitions via their root", async () => {
    const setup = await cdcOn(createOrders);
    expect((await saveMapping(setup, ORDERS_MAPPING)).errors).toBeUndefined();
    await expectOrdersDelivered(setup);
  });

  it('sets publish_via_partition_root on the publication an earlier version created without it, and delivers the partitioned table', async () => {
    const setup = await cdcOn(async (pool) => {
      await createOrders(pool);
      const client = await pool.connect();
      const { publicationName } = defaultReplicationNames(await identifyDatabase(client).finally(() => client.release()));
      await pool.query(`CREATE PUBLICATION ${publicationName} FOR ALL TABLES`);
    });
    expect((await setup.source.query('SELECT pubviaroot FROM pg_publication')).rows).toEqual([{ pubviaroot: true }]);
    expect((await saveMapping(setup, ORDERS_MAPPING)).errors).toBeUndefined();
    await expectOrdersDelivered(setup);
  });

  it("adds a table the source's own publication leaves out when the role may, and refuses one it publishes under its partitions' names, saying how to fix it", async () => {
    const names = { slotName: uniqueName('slot'), publicationName: uniqueName('pub') };
    const setup = await cdcOn(async (pool) => {
      await createOrders(pool);
      await pool.query('CREATE TABLE leads (id int PRIMARY KEY, tenant_id text NOT NULL)');
      await pool.query(`CREATE PUBLICATION ${names.publicationName} FOR TABLE orders`);
    }, names);
    // A superuser may add it (a role that may not is refused with the statement: cdc-select-grant.test.ts).
    const leads = await saveMapping(setup, { ...ORDERS_MAPPING, name: 'leads', table: 'leads', model: 'leads', topic: 'shop.lead-events' });
    expect(leads.errors).toBeUndefined();
    const published = await setup.source.query('SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1', [names.publicationName]);
    expect(published.rows.map((row: { tablename: string }) => row.tablename)).toEqual(['leads', 'orders_eu', 'orders_us']);
    const orders = await saveMapping(setup, ORDERS_MAPPING);
    expect(orders.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    expect(orders.errors?.[0]?.message).toContain(`ALTER PUBLICATION "${names.publicationName}" SET (publish_via_partition_root = true);`);

    // The fix it names is enough.
    await setup.source.query(`ALTER PUBLICATION ${names.publicationName} SET (publish_via_partition_root = true)`);
    expect((await saveMapping(setup, ORDERS_MAPPING)).errors).toBeUndefined();
    await expectOrdersDelivered(setup);
  });
});

describe('CDC on the embedded platform database', () => {
  it('reads a Postgres source while Tributary itself runs on PGlite (the npm start default)', async () => {
    const setup = await setUpCdc({ embedded: true });
    expect((await saveMapping(setup, CONTACTS_MAPPING)).errors).toBeUndefined();
    const subscribers = setup.server.stats().subscribers;
    const client = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts' });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Embedded')`);
    expect(await nextChange(client)).toMatchObject({ operation: 'CREATED', record: { name: 'Embedded' } });
  });
});

describe('CDC housekeeping', () => {
  it('keeps raw changes in cdc_events for the retention period, and exports the reader lag and retained WAL', async () => {
    const platform = await createTestDatabase();
    const setup = await setUpCdc({ env: { DATABASE_URL: platform.url } });
    expect((await saveMapping(setup, CONTACTS_MAPPING)).errors).toBeUndefined();
    const pool = openTestPool(platform.url, { max: 1 });
    // A raw change from two days ago: past the default retention of one day.
    await pool.query(
      `INSERT INTO cdc_events (source, lsn, commit_lsn, xid, table_name, operation, new_row, received_at)
       VALUES ('old', '0/1', '0/1', 1, 'public.contacts', 'insert', '{}', now() - interval '2 days')`,
    );
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Raw')`);

    const rawRows = async () => (await pool.query<{ source: string; new_row: unknown }>('SELECT source, new_row FROM cdc_events ORDER BY id')).rows;
    await waitFor(async () => (await rawRows()).some((row) => (row.new_row as { name?: string } | null)?.name === 'Raw'), {
      message: 'the raw change is stored',
    });
    await waitFor(async () => !(await rawRows()).some((row) => row.source === 'old'), { timeoutMs: 15_000, message: 'the expired raw change is pruned' });

    // Lag and retained WAL are read every 5 s by the leading instance, and exported.
    await waitFor(async () => (await metricLines(setup.server.url)).some((line) => line.startsWith('tributary_cdc_retained_wal_bytes{source=')), {
      timeoutMs: 15_000,
      message: 'retained WAL exported',
    });
    const lines = await metricLines(setup.server.url);
    expect(lines.some((line) => /^tributary_cdc_lag_bytes\{source="[^"]+"\} \d+$/.test(line))).toBe(true);
    // The source is named by a hash, never by its URL.
    expect(lines.join('\n')).not.toContain(new URL(setup.sourceUrl).pathname.slice(1));
  });
});

async function metricLines(baseUrl: string): Promise<string[]> {
  return (await (await fetch(`${baseUrl}/metrics`)).text()).split('\n');
}
