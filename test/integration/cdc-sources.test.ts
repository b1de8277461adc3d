/**
 * Several CDC sources on one Postgres server (issue 9, defect b): slots and publications are named
 * per database, and readers are keyed by the database's identity, not by the URL's text.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, deniedChanges, gql, nextChange, saveMappingOk, sendChanges, setUpCdc } from '../helpers/cdc.ts';
import { createTestDatabase, uniqueName, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

interface Env {
  readonly app: string;
  readonly env: string;
}

/** A database with the `contacts` table of `setUpCdc`, and a pool on it closed when the test ends. */
async function contactsDatabase(): Promise<{ url: string; name: string; pool: pg.Pool }> {
  const database = await createTestDatabase();
  const pool = openTestPool(database.url);
  await pool.query('CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)');
  await pool.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
  return { url: database.url, name: database.name, pool };
}

async function admin(scope: Env): Promise<string> {
  return signHs256({ ...scope, roles: ['admin'], permissions: [], tenant: undefined });
}

/** Points `scope` at `url`, saves `mapping`, and waits until its reader streams; returns the slot it reads. */
async function configure(server: TestServer, scope: Env, url: string, mapping: Record<string, unknown>): Promise<string> {
  const token = await admin(scope);
  const set = await gql(server, token, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { database } }', { url });
  expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
  const saved = await gql(server, token, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: mapping });
  expect(saved.errors, JSON.stringify(saved.errors)).toBeUndefined();
  const slot = await waitFor(
    async () => {
      const body = await gql(server, token, '{ cdcSource { status { state slotName } } }');
      const status = (body.data?.['cdcSource'] as { status: { state: string; slotName: string | null } | null } | null)?.status;
      return status?.state === 'streaming' ? status.slotName ?? undefined : undefined;
    },
    { message: `the reader of ${scope.app}/${scope.env} streams` },
  );
  return slot!;
}

/**
 * A `changes(model:)` subscriber of `scope`'s tenant `a`, counted by the server before this
 * resolves (as a subscriber, or as a silent refusal when `denied`).
 */
async function subscriber(server: TestServer, scope: Env, permission: string, model: string, denied = false): Promise<RawSocket> {
  const before = denied ? await deniedChanges(server) : server.stats().subscribers;
  const socket = await openAcknowledgedSocket(server.wsUrl, await signHs256({ ...scope, tenant: 'a', permissions: [permission] }));
  sendChanges(socket, 'c', { m: model });
  await waitFor(async () => (denied ? await deniedChanges(server) : server.stats().subscribers) === before + 1, { message: 'subscribed' });
  return socket;
}

async function slotsOf(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()');
  return rows.map((row) => row.slot_name);
}

/** Asserts no further message is queued on the socket: a ping's pong comes first. */
async function expectNothingElse(socket: RawSocket): Promise<void> {
  socket.send({ type: 'ping' });
  expect(await socket.nextMessage()).toEqual({ type: 'pong' });
}

describe('several CDC sources on one Postgres server', () => {
  it('streams two environments whose sources are two databases of one server, each with its own slot', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const [one, two] = [await contactsDatabase(), await contactsDatabase()];
    const shop = { app: 'shop', env: 'prod' };
    const blog = { app: 'blog', env: 'prod' };
    const slotOne = await configure(server, shop, one.url, CONTACTS_MAPPING);
    const slotTwo = await configure(server, blog, two.url, CONTACTS_MAPPING);
    expect(slotOne).not.toBe(slotTwo);
    expect(await slotsOf(one.pool)).toEqual([slotOne]);
    expect(await slotsOf(two.pool)).toEqual([slotTwo]);

    const shopFeed = await subscriber(server, shop, 'crm.contacts.read', 'contacts');
    const blogFeed = await subscriber(server, blog, 'crm.contacts.read', 'contacts');
    await one.pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'in shop')`);
    await two.pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'in blog')`);

    expect(await nextChange(shopFeed, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'in shop' } });
    expect(await nextChange(blogFeed, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'in blog' } });
    await expectNothingElse(shopFeed);
    await expectNothingElse(blogFeed);
  });

  it('reads a database once for every environment that points at it, however its URL is spelled', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const db = await contactsDatabase();
    // Another user, and query parameters: the same database all the same.
    const role = uniqueName('reader');
    await db.pool.query(`CREATE ROLE ${role} LOGIN REPLICATION`);
    const otherSpelling = new URL(db.url);
    otherSpelling.username = role;
    otherSpelling.searchParams.set('application_name', 'crm-sync');
    const shop = { app: 'shop', env: 'prod' };
    const crm = { app: 'crm', env: 'staging' };
    const leads = { ...CONTACTS_MAPPING, name: 'leads', module: 'sales', model: 'leads', topic: 'sales.lead-events' };
    const slotShop = await configure(server, shop, db.url, CONTACTS_MAPPING);
    const slotCrm = await configure(server, crm, otherSpelling.toString(), leads);
    expect(slotCrm).toBe(slotShop);
    expect(await slotsOf(db.pool)).toEqual([slotShop]);
    const walsenders = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.database = current_database()`,
    );
    expect(walsenders.rows[0]).toEqual({ n: 1 });
    // One reader per database: a third environment may not name another slot for it.
    const conflicting = await gql(server, await admin({ app: 'ops', env: 'prod' }), 'mutation($url: String!) { setCdcSource(databaseUrl: $url, slotName: "ops_slot") { database } }', {
      url: db.url,
    });
    expect(conflicting.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'slotName' });
    expect(conflicting.errors?.[0]?.message).toContain(`already reads this database with slot "${slotShop}"`);

    const shopFeed = await subscriber(server, shop, 'crm.contacts.read', 'contacts');
    const crmFeed = await subscriber(server, crm, 'sales.leads.read', 'leads');
    // A subscriber of one environment never sees the other's model, though both read one table.
    const crossed = await subscriber(server, shop, 'sales.leads.read', 'leads', true);
    await db.pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'Ann'), ('b', 'Bob')`);

    expect(await nextChange(shopFeed, 'c')).toMatchObject({ operation: 'CREATED', model: 'contacts', record: { tenant_id: 'a', name: 'Ann' } });
    expect(await nextChange(crmFeed, 'c')).toMatchObject({ operation: 'CREATED', model: 'leads', record: { tenant_id: 'a', name: 'Ann' } });
    await expectNothingElse(shopFeed);
    await expectNothingElse(crmFeed);
    await expectNothingElse(crossed);
  });
});

describe('source connections', () => {
  it("reuses the source's pooled connection for the reader's periodic inspection instead of connecting each time", { timeout: 60_000 }, async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const inspection = async () => {
      const { rows } = await setup.source.query<{ pid: number; query_start: Date }>(
        `SELECT pid, query_start FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'tributary-cdc-setup' AND query LIKE '%pg_wal_lsn_diff%'`,
      );
      return rows;
    };
    // The slot's lag is read every 5 s; its connection stays open in the pool afterwards.
    const first = (await waitFor(async () => (await inspection())[0], {
      timeoutMs: 20_000,
      message: 'an inspection ran on a connection that stays open',
    }))!;
    const later = await waitFor(
      async () => (await inspection()).find((row) => row.pid === first.pid && row.query_start.getTime() > first.query_start.getTime()),
      { timeoutMs: 20_000, message: 'the next inspection ran on the same connection' },
    );
    expect(later?.pid).toBe(first.pid);
  });
});
