/**
 * An outbox's id follows the database and table its URL reaches, not the URL's text. Event ids
 * derive from the outbox id and the row id, so an operator who rotates the password, changes the
 * login or adds `application_name` must not make rows routed again (at least once: a crash between
 * routing and marking, rows routed from the WAL not yet deleted) arrive under new ids that
 * subscribers resuming with cursors and webhook receivers de-duplicating by id cannot tell from new
 * events. A URL that reaches another database, or another table, still gets a new id: its row ids
 * repeat the old table's.
 */
import { rm } from 'node:fs/promises';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { createLogger } from '../../src/logger.ts';
import type { SetOutboxSourceInput } from '../../src/pipeline/outbox/outbox-admin.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { gql } from '../helpers/cdc.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { eventOf, type DeliveredEvent } from '../helpers/events.ts';
import { saveOutboxSourceBeforeStart, testOutboxAdmin } from '../helpers/outbox-source.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'shop', env: 'prod', tenant: undefined };
const SERVER_ENV = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', OUTBOX_POLL_INTERVAL_MS: '50' };
const SET_OUTBOX = 'mutation($url: String!, $mode: OutboxMode) { setOutboxSource(databaseUrl: $url, createTable: true, mode: $mode) { mode } }';

/** The URL with `query` appended as its query string. */
const withQuery = (url: string, query: string) => `${url}${url.includes('?') ? '&' : '?'}${query}`;

/** A login of its own on the database of `url` (dropped at the end), its URL, and what `setUp` runs as it. */
async function createLogin(owner: pg.Pool, url: string, setUp: (role: string) => string[]): Promise<string> {
  const role = uniqueName('login');
  await owner.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
  onTestFinished(async () => {
    await owner.query(`DROP OWNED BY ${role} CASCADE`);
    await owner.query(`DROP ROLE ${role}`);
  });
  for (const statement of setUp(role)) await owner.query(statement);
  const next = new URL(url);
  next.username = role;
  next.password = 'pw';
  return next.toString();
}

type Platform = 'postgres' | 'embedded';

/** A migrated platform database: Postgres, or the embedded PGlite (copies of the run's migrated templates). */
async function platformDatabase(platform: Platform): Promise<Database> {
  if (platform === 'postgres') {
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    return fixture.db;
  }
  const dir = await pgliteDataDir({ migrated: true });
  const db = await createEmbeddedDatabase({ dataDir: dir });
  onTestFinished(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  return db;
}

/** The admin on a platform database of its own; `routes` sends a URL's connections elsewhere (a name that comes to reach another database). */
async function setUpAdmin(platform: Platform = 'postgres') {
  const db = await platformDatabase(platform);
  const appDb = await createTestDatabase();
  const owner = openTestPool(appDb.url);
  const routes = new Map<string, string>();
  const outbox = testOutboxAdmin(db, { connect: (url) => createOutboxPool(routes.get(url) ?? url, logger), checkReplication: async () => {} });
  const idOf = async (input: SetOutboxSourceInput) => (await outbox.setSource(SCOPE, { mode: 'POLL', createTable: true, ...input })).outboxId;
  return { db, appDb, owner, routes, idOf };
}

const PLATFORMS: readonly Platform[] = ['postgres', 'embedded'];

describe('the outbox id across setOutboxSource calls', () => {
  it.each(PLATFORMS)('is kept when the URL changes but reaches the same database and table: another login, application_name, sslmode, the schema named (%s platform database)', async (platform) => {
    const { appDb, owner, idOf } = await setUpAdmin(platform);
    const first = await idOf({ databaseUrl: appDb.url });
    const rotated = await createLogin(owner, appDb.url, (role) => [`GRANT SELECT, INSERT, UPDATE, DELETE ON event_outbox TO ${role}`]);
    expect(await idOf({ databaseUrl: withQuery(appDb.url, 'application_name=shop') })).toBe(first);
    expect(await idOf({ databaseUrl: withQuery(appDb.url, 'sslmode=disable') })).toBe(first);
    expect(await idOf({ databaseUrl: rotated })).toBe(first);
    expect(await idOf({ databaseUrl: rotated, table: 'public.event_outbox' })).toBe(first);
    expect(await idOf({ databaseUrl: appDb.url })).toBe(first);
  });

  it('is new when the URL reaches another database or another table, also under the same URL text', async () => {
    const { appDb, owner, routes, idOf } = await setUpAdmin();
    const other = await createTestDatabase();
    // A login whose search path finds an `event_outbox` of its own schema (made first: it would
    // find the public one otherwise), then the owner's, in public: two tables of one database.
    const own = await createLogin(owner, appDb.url, (role) => [`CREATE SCHEMA ${role} AUTHORIZATION ${role}`]);
    const ownTable = await idOf({ databaseUrl: own });
    const first = await idOf({ databaseUrl: appDb.url });
    expect(first).not.toBe(ownTable);
    const elsewhere = await idOf({ databaseUrl: other.url });
    expect(elsewhere).not.toBe(first);
    const back = await idOf({ databaseUrl: appDb.url });
    expect([first, elsewhere]).not.toContain(back);
    const otherTable = await idOf({ databaseUrl: appDb.url, table: 'other_outbox' });
    expect(otherTable).not.toBe(back);
    expect([ownTable, first, elsewhere, back, otherTable]).not.toContain(await idOf({ databaseUrl: own }));

    // The same text, now reaching another database (a DNS name or a proxy moved to another server).
    const alias = 'postgres://outbox-alias.invalid/shop';
    routes.set(alias, appDb.url);
    const aliased = await idOf({ databaseUrl: alias });
    routes.set(alias, other.url);
    expect(await idOf({ databaseUrl: alias })).not.toBe(aliased);
  });

  it.each(PLATFORMS)('is kept for an outbox saved by an earlier version when the new URL names the same host, port and database (%s platform database)', async (platform) => {
    const { db, appDb, owner, idOf } = await setUpAdmin(platform);
    const forget = () => db.query('UPDATE outbox_sources SET source_identity = NULL');
    const first = await idOf({ databaseUrl: appDb.url });
    // As an earlier version left it: no identity, only the URL it was set with.
    await forget();
    const rotated = await createLogin(owner, appDb.url, (role) => [`GRANT SELECT, INSERT, UPDATE, DELETE ON event_outbox TO ${role}`]);
    expect(await idOf({ databaseUrl: withQuery(rotated, 'application_name=shop') })).toBe(first);
    // Its identity is known from then on.
    expect(await idOf({ databaseUrl: appDb.url })).toBe(first);

    const other = await createTestDatabase();
    await forget();
    expect(await idOf({ databaseUrl: other.url })).not.toBe(first);
  });
});

/** A subscriber of the topic `orders` (any tenant). */
async function subscribeOrders(server: TestServer): Promise<RawSocket> {
  const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: undefined, permissions: ['orders.read'] }));
  const before = server.stats().subscribers;
  client.send({ id: 'o', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id type payload } }' } });
  await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });
  return client;
}

type Received = Pick<DeliveredEvent, 'id' | 'type' | 'payload'>;

async function next(client: RawSocket): Promise<Received> {
  return eventOf(await client.nextMessage());
}

/** Every event up to and including the first of type `type`. */
async function until(client: RawSocket, type: string): Promise<Received[]> {
  const events: Received[] = [];
  for (let event = await next(client); ; event = await next(client)) {
    events.push(event);
    if (event.type === type) return events;
  }
}

/** The ids each row (by its payload's `row`) arrived with. */
function idsByRow(events: readonly Received[]): Map<number, Set<string>> {
  const ids = new Map<number, Set<string>>();
  for (const { id, payload } of events) {
    if (typeof payload['row'] !== 'number') continue;
    ids.set(payload['row'], (ids.get(payload['row']) ?? new Set()).add(id));
  }
  return ids;
}

async function setUpServer(mode: 'POLL' | 'WAL') {
  const [platform, appDb] = await Promise.all([createTestDatabase({ migrated: true }), createTestDatabase()]);
  const app = openTestPool(appDb.url);
  // The first URL, saved before the server starts: its readers load it at once (outbox-source.ts);
  // the change to another is the API's, under test.
  expect(await saveOutboxSourceBeforeStart(platform.url, { databaseUrl: appDb.url, createTable: true, mode })).toMatchObject({ readMode: mode });
  const server = await startTestServer({ ...SERVER_ENV, DATABASE_URL: platform.url });
  const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
  const setOutbox = async (url: string) => expect((await gql(server, admin, SET_OUTBOX, { url, mode })).data).toEqual({ setOutboxSource: { mode } });
  const client = await subscribeOrders(server);
  const enqueue = (type: string, payload: Record<string, unknown>) => enqueueOutboxEvent(app, { topic: 'orders', type, payload, entity: 'order:1' });
  const lastError = async () => ((await gql(server, admin, '{ outboxStatus { lastError } }')).data?.['outboxStatus'] as { lastError: string | null } | null)?.lastError ?? null;
  // A first event routed and its row done with (marked in POLL, deleted in WAL), so that no later
  // trigger of a test meets the warm-up row and makes it come again.
  const warmUp = async () => {
    await enqueue('warm-up', {});
    expect((await next(client)).type).toBe('warm-up');
    const pending = mode === 'POLL' ? 'SELECT 1 FROM event_outbox WHERE processed_at IS NULL' : 'SELECT 1 FROM event_outbox';
    await waitFor(async () => (await app.query(pending)).rowCount === 0, { timeoutMs: 20_000, message: 'the warm-up row done with' });
  };
  return { appDb, app, server, client, setOutbox, enqueue, lastError, warmUp };
}

describe('a row routed again after the outbox URL changed', () => {
  it('keeps its id in POLL mode (routed, then its marking failed, as in a crash before COMMIT)', { timeout: 120_000 }, async () => {
    const { appDb, app, client, setOutbox, enqueue, lastError, warmUp } = await setUpServer('POLL');
    await warmUp();
    // Routed, never marked: every poll routes the row again, as after a crash between routing and COMMIT.
    await app.query(`CREATE FUNCTION hold_marks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'marking held'; END $$`);
    await app.query('CREATE TRIGGER hold_marks BEFORE UPDATE ON event_outbox FOR EACH ROW EXECUTE FUNCTION hold_marks()');
    await enqueue('order.created', { row: 1 });
    const first = await next(client);
    expect(first.payload).toEqual({ row: 1 });

    await setOutbox(withQuery(appDb.url, 'application_name=rotated'));
    // The poller of the outbox as now saved has failed a pass, after routing the row (the status
    // keeps only the figures of the outbox id now saved, which the save cleared).
    await waitFor(async () => (await lastError())?.includes('marking held'), { timeoutMs: 60_000, message: 'a poll of the outbox as saved now failed' });
    await app.query('DROP TRIGGER hold_marks ON event_outbox');
    await enqueue('marker', {});
    const events = [first, ...(await until(client, 'marker'))];
    expect(idsByRow(events)).toEqual(new Map([[1, new Set([first.id])]]));
  });

  it('keeps its id in WAL mode (routed from the WAL, still in the table when the URL changed)', { timeout: 120_000 }, async () => {
    const { appDb, app, client, setOutbox, enqueue, warmUp } = await setUpServer('WAL');
    await warmUp();
    // Routed rows stay in the table, as they do until the reader's clean-up has deleted them.
    await app.query(`CREATE FUNCTION keep_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`);
    await app.query('CREATE TRIGGER keep_rows BEFORE DELETE ON event_outbox FOR EACH ROW EXECUTE FUNCTION keep_rows()');
    await enqueue('order.created', { row: 1 });
    await enqueue('order.created', { row: 2 });
    const routed = [await next(client), await next(client)];
    expect(routed.map((event) => event.payload)).toEqual([{ row: 1 }, { row: 2 }]);

    // The reader of the outbox as now saved catches up from the table: both rows come again.
    await setOutbox(withQuery(appDb.url, 'application_name=rotated'));
    const again = [await next(client), await next(client)];
    expect(again.map((event) => event.payload)).toEqual([{ row: 1 }, { row: 2 }]);
    expect(idsByRow([...routed, ...again])).toEqual(
      new Map([
        [1, new Set([routed[0]!.id])],
        [2, new Set([routed[1]!.id])],
      ]),
    );
  });

  it('is marked by a reader on the new URL in POLL mode (the old login may be revoked)', { timeout: 120_000 }, async () => {
    const { appDb, app, client, setOutbox, enqueue, warmUp } = await setUpServer('POLL');
    await warmUp();
    // Only sessions of the new URL can mark rows: the old login's credentials no longer work for it.
    await app.query(`CREATE FUNCTION old_login() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF current_setting('application_name') <> 'rotated' THEN RAISE EXCEPTION 'old login'; END IF; RETURN NEW; END $$`);
    await app.query('CREATE TRIGGER old_login BEFORE UPDATE ON event_outbox FOR EACH ROW EXECUTE FUNCTION old_login()');
    await enqueue('order.created', { row: 1 });
    const first = await next(client);

    await setOutbox(withQuery(appDb.url, 'application_name=rotated'));
    await waitFor(async () => (await app.query('SELECT 1 FROM event_outbox WHERE processed_at IS NULL')).rowCount === 0, {
      timeoutMs: 60_000,
      message: 'the row marked by a reader on the new URL',
    });
    await enqueue('marker', {});
    const events = [first, ...(await until(client, 'marker'))];
    expect(idsByRow(events)).toEqual(new Map([[1, new Set([first.id])]]));
  });
});
