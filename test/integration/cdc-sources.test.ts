/**
 * Several CDC sources on one Postgres server (issue 9, defect b): slots and publications are named
 * per database, and readers are keyed by the database's identity, not by the URL's text.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
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
    // A mapping's table must be readable by the source's role (`records`): checked on save.
    await db.pool.query(`GRANT SELECT ON contacts TO ${role}`);
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

describe('a source URL that changes', () => {
  it("moves the reader to the environment's new URL of the same database (rotated credentials), on the same slot, and lets go of the old login", { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const db = await contactsDatabase();
    const [oldRole, newRole] = [uniqueName('old'), uniqueName('new')];
    for (const role of [oldRole, newRole]) await db.pool.query(`CREATE ROLE ${role} LOGIN SUPERUSER`);
    const urlAs = (role: string) => {
      const url = new URL(db.url);
      url.username = role;
      return url.toString();
    };
    const shop = { app: 'shop', env: 'prod' };
    const slot = await configure(server, shop, urlAs(oldRole), CONTACTS_MAPPING);
    /** The roles of the source's backends that Tributary opened (the walsender, named for its deployment; the pooled ones). */
    const tributaryLogins = async (applicationName: string) =>
      (await db.pool.query<{ usename: string }>('SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1', [applicationName])).rows.map(
        (row) => row.usename,
      );
    await waitFor(async () => (await tributaryLogins('tributary-cdc/%')).join() === oldRole, { message: 'the walsender runs as the old role' });

    const set = await gql(server, await admin(shop), 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { user } }', { url: urlAs(newRole) });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
    await waitFor(async () => (await tributaryLogins('tributary-cdc/%')).join() === newRole, { timeoutMs: 20_000, message: 'the walsender runs as the new role' });
    // The old login's pool is closed: revoking it affects nothing Tributary holds.
    await waitFor(async () => !(await tributaryLogins('tributary-cdc-setup')).includes(oldRole), { message: 'no pooled connection of the old role is left' });
    await db.pool.query(`ALTER ROLE ${oldRole} NOLOGIN`);
    await db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tributary-cdc/%'`);

    const feed = await subscriber(server, shop, 'crm.contacts.read', 'contacts');
    await db.pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'after the rotation')`);
    expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'after the rotation' } });
    expect(await slotsOf(db.pool)).toEqual([slot]);
  });

  it("moves the reader to another environment's URL of the database when the environment whose URL it used is removed", { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const db = await contactsDatabase();
    const role = uniqueName('crm');
    await db.pool.query(`CREATE ROLE ${role} LOGIN SUPERUSER`);
    const crmUrl = new URL(db.url);
    crmUrl.username = role;
    const shop = { app: 'shop', env: 'prod' };
    const crm = { app: 'crm', env: 'prod' };
    const slot = await configure(server, shop, db.url, CONTACTS_MAPPING);
    await configure(server, crm, crmUrl.toString(), { ...CONTACTS_MAPPING, name: 'leads', module: 'sales', model: 'leads', topic: 'sales.lead-events' });
    const walsenderLogin = async () =>
      (await db.pool.query<{ usename: string }>(`SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tributary-cdc/%'`)).rows.map((row) => row.usename).join();
    expect(await walsenderLogin()).not.toBe(role);

    expect(await gql(server, await admin(shop), 'mutation { removeCdcSource }')).toEqual({ data: { removeCdcSource: true } });
    await waitFor(async () => (await walsenderLogin()) === role, { timeoutMs: 20_000, message: "the walsender runs as the remaining environment's role" });
    const feed = await subscriber(server, crm, 'sales.leads.read', 'leads');
    await db.pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'after the removal')`);
    expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'CREATED', model: 'leads', record: { name: 'after the removal' } });
    expect(await slotsOf(db.pool)).toEqual([slot]);
  });
});

/**
 * A source read as a role of its own (REPLICATION, no superuser) with a slot and a publication of
 * the test's own names, and a way to make the source refuse that role's new connections while its
 * walsender stays connected (what `max_connections` reached does to every new connection).
 */
async function sourceWithOwnRole(server: TestServer, scope: Env) {
  const db = await contactsDatabase();
  const role = uniqueName('reader');
  await db.pool.query(`CREATE ROLE ${role} LOGIN REPLICATION`);
  await db.pool.query(`GRANT SELECT ON contacts TO ${role}`);
  const names = { slotName: uniqueName('slot'), publicationName: uniqueName('pub') };
  await db.pool.query(`CREATE PUBLICATION ${names.publicationName} FOR ALL TABLES`);
  const url = new URL(db.url);
  url.username = role;
  const set = await gql(server, await admin(scope), 'mutation($url: String!, $s: String, $p: String) { setCdcSource(databaseUrl: $url, slotName: $s, publicationName: $p) { database } }', {
    url: url.toString(),
    s: names.slotName,
    p: names.publicationName,
  });
  expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
  return {
    db,
    names,
    async refuseNewConnections() {
      await db.pool.query(`ALTER ROLE ${role} NOLOGIN`);
      // Until none is left: a pooled connection that was logging in meanwhile may have got through.
      const pooled = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND application_name = 'tributary-cdc-setup'`;
      await waitFor(async () => (await db.pool.query(pooled, [role])).rowCount === 0, { message: "the role's pooled connections are ended" });
    },
    acceptNewConnections: () => db.pool.query(`ALTER ROLE ${role} LOGIN`),
  };
}

describe('a source whose catalog cannot be read', () => {
  it('keeps keying changes by the primary key it read before (not by every column of REPLICA IDENTITY FULL)', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const shop = { app: 'shop', env: 'prod' };
    const source = await sourceWithOwnRole(server, shop);
    const saved = await gql(server, await admin(shop), 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: CONTACTS_MAPPING });
    expect(saved.errors, JSON.stringify(saved.errors)).toBeUndefined();
    await waitFor(async () => ((await gql(server, await admin(shop), '{ cdcSource { status { state } } }')).data?.['cdcSource'] as { status: { state: string } }).status.state === 'streaming', {
      timeoutMs: 20_000,
    });
    const feed = await subscriber(server, shop, 'crm.contacts.read', 'contacts');
    await source.db.pool.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'first')`);
    const created = await nextChange(feed, 'c');
    expect(created).toMatchObject({ operation: 'CREATED', id: String(created.record?.['id']) });

    await source.refuseNewConnections();
    // Any configuration change loads every source's catalog again: this one's read fails.
    const other = await contactsDatabase();
    const ops = await gql(server, await admin({ app: 'ops', env: 'prod' }), 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { database } }', { url: other.url });
    expect(ops.errors, JSON.stringify(ops.errors)).toBeUndefined();

    await source.db.pool.query(`UPDATE contacts SET name = 'renamed' WHERE name = 'first'`);
    expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'UPDATED', id: created.id, record: { name: 'renamed' } });
    await expectNothingElse(feed);
  });

  it("holds the changes of a mapped table whose entry was never read until it is, then keys them by the table's primary key", { timeout: 90_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const shop = { app: 'shop', env: 'prod' };
    const source = await sourceWithOwnRole(server, shop);
    await waitFor(async () => ((await gql(server, await admin(shop), '{ cdcSource { status { state } } }')).data?.['cdcSource'] as { status: { state: string } }).status.state === 'streaming', {
      timeoutMs: 20_000,
    });
    await source.db.pool.query('CREATE TABLE leads (id int PRIMARY KEY, tenant_id text NOT NULL, name text)');
    await source.db.pool.query('ALTER TABLE leads REPLICA IDENTITY FULL');
    await source.refuseNewConnections();
    // Another environment maps the table under a URL that still connects: the mapping is checked
    // and saved, but the reader reads catalogs on its own URL, which is refused.
    const crm = { app: 'crm', env: 'prod' };
    const token = await admin(crm);
    const set = await gql(server, token, 'mutation($url: String!, $s: String, $p: String) { setCdcSource(databaseUrl: $url, slotName: $s, publicationName: $p) { database } }', {
      url: source.db.url,
      s: source.names.slotName,
      p: source.names.publicationName,
    });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
    const leads = { ...CONTACTS_MAPPING, name: 'leads', table: 'leads', model: 'leads', topic: 'crm.lead-events' };
    const saved = await gql(server, token, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: leads });
    expect(saved.errors, JSON.stringify(saved.errors)).toBeUndefined();
    const feed = await subscriber(server, crm, 'crm.leads.read', 'leads');
    await source.db.pool.query(`INSERT INTO leads VALUES (1, 'a', 'Ann')`);
    // Received and held: the reader fails the transaction, and its reconnect fails while the role is refused.
    await waitFor(
      async () => {
        const status = (await gql(server, token, '{ cdcSource { status { lastError } } }')).data?.['cdcSource'] as { status: { lastError: string | null } };
        return /the catalog entry of public\.leads could not be read|not permitted to log in/.test(status.status.lastError ?? '');
      },
      { message: 'the reader holds the change' },
    );
    await source.acceptNewConnections();
    expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'CREATED', id: '1', record: { name: 'Ann' } });
    await expectNothingElse(feed);
  });
});

describe('a source database that does not answer', () => {
  it("holds up no other environment's CDC mutations: each answers while the one connection attempt to it still waits", { timeout: 60_000 }, async () => {
    // A host that accepts connections and never says a word: a connect waits out its whole timeout.
    const sockets: { socket: Socket; closed: boolean }[] = [];
    const silent = createServer((socket) => {
      const entry = { socket, closed: false };
      socket.on('close', () => (entry.closed = true));
      sockets.push(entry);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      for (const { socket } of sockets) socket.destroy();
      silent.close();
    });
    const platform = await createTestDatabase();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', DATABASE_URL: platform.url });
    // Environment ops/prod's source was set while its host answered.
    const platformPool = openTestPool(platform.url);
    const { port } = silent.address() as AddressInfo;
    await platformPool.query(`INSERT INTO cdc_sources (app, env, database_url) VALUES ('ops', 'prod', $1)`, [`postgres://u:p@127.0.0.1:${port}/gone`]);
    await waitFor(() => sockets.length > 0, { message: 'a reload tries to reach the silent source' });

    const db = await contactsDatabase();
    const shop = { app: 'shop', env: 'prod' };
    const token = await admin(shop);
    const set = await gql(server, token, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { database } }', { url: db.url });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
    const saved = await gql(server, token, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: CONTACTS_MAPPING });
    expect(saved.errors, JSON.stringify(saved.errors)).toBeUndefined();
    expect(await gql(server, token, 'mutation { deleteCdcMapping(name: "nothing") }')).toEqual({ data: { deleteCdcMapping: false } });
    // No mutation waited for the silent host: its first connection attempt is still waiting, and
    // no reload started another.
    expect(sockets.map(({ closed }) => closed)).toEqual([false]);
    // The reader beside it creates its slot on its own time: a row written before that is not a change.
    await waitFor(
      async () => {
        const body = await gql(server, token, '{ cdcSource { status { state } } }');
        return (body.data?.['cdcSource'] as { status: { state: string } | null } | null)?.status?.state === 'streaming';
      },
      { timeoutMs: 20_000, message: 'the reader of shop/prod streams beside the silent source' },
    );
    expect(sockets.map(({ closed }) => closed)).toEqual([false]);

    const feed = await subscriber(server, shop, 'crm.contacts.read', 'contacts');
    await db.pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'beside a silent source')`);
    expect(await nextChange(feed, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'beside a silent source' } });
  });
});

describe('removing a source', () => {
  it('answers while the slot waits for a transaction left open on the source, which the status names, and leaves no slot behind', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const db = await contactsDatabase();
    // An application's transaction that holds a transaction id, left idle in transaction.
    const open = await db.pool.connect();
    onTestFinished(() => open.release(true));
    await open.query('BEGIN');
    await open.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'uncommitted')`);
    const openPid = (await open.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const shop = await admin({ app: 'shop', env: 'prod' });
    const set = await gql(server, shop, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { database } }', { url: db.url });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();

    const status = await waitFor(
      async () => {
        const body = await gql(server, shop, '{ cdcSource { status { state lastError } } }');
        const current = (body.data?.['cdcSource'] as { status: { state: string; lastError: string | null } }).status;
        return current.lastError?.includes('waiting for open transactions to create the slot') ? current : undefined;
      },
      { timeoutMs: 20_000, message: 'the status says the slot waits for open transactions' },
    );
    expect(status).toMatchObject({ state: 'starting' });
    expect(status?.lastError).toContain(`backends ${openPid}`);

    expect(await gql(server, shop, 'mutation { removeCdcSource }')).toEqual({ data: { removeCdcSource: true } });
    // Nothing of another environment waits behind it either.
    const blog = await admin({ app: 'blog', env: 'prod' });
    expect(await gql(server, blog, 'mutation { deleteCdcMapping(name: "nothing") }')).toEqual({ data: { deleteCdcMapping: false } });
    // All of it while the transaction is still open; once it ends, no slot is created after all.
    expect((await open.query<{ xid: string | null }>('SELECT pg_current_xact_id_if_assigned()::text AS xid')).rows[0]?.xid).not.toBeNull();
    await open.query('COMMIT');
    expect(await slotsOf(db.pool)).toEqual([]);
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
