/**
 * Two deployments — each a platform database and its instances — reading CDC from one source
 * database. A logical slot keeps one position: two readers of one slot each confirm changes the
 * other then never gets. So each deployment reads on a slot of its own (the deployment's id in the
 * name), a reader never terminates a walsender that is not its own deployment's (a second
 * deployment set on the first's slot is refused with MISCONFIGURED), and a reader that finds its
 * slot moved on by someone else tells its subscribers to resync rather than skipping silently.
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { sourceIdOf } from '../../src/pipeline/cdc/cdc-source.ts';
import { defaultReplicationNames, identifyDatabase } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { CONTACTS_MAPPING, gql, nextChange, sendChanges } from '../helpers/cdc.ts';
import { migrateBefore } from '../helpers/migrate-before.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const ENV = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' };
/** A slot Tributary names for a deployment: the database's digits, then the deployment's. */
const DEPLOYMENT_SLOT = /^(tributary_[0-9a-f]{20})_([0-9a-f]{12})$/;

interface ReaderStatus {
  readonly state: string;
  readonly slotName: string | null;
  readonly lastError: string | null;
}

/** A source database with the `contacts` table of `setUpCdc`, and a pool on it. */
async function contactsDatabase(): Promise<{ url: string; pool: pg.Pool }> {
  const database = await createTestDatabase();
  const pool = openTestPool(database.url);
  await pool.query('CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)');
  await pool.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
  return { url: database.url, pool };
}

function admin(): Promise<string> {
  return signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
}

async function readerStatus(server: TestServer): Promise<ReaderStatus | undefined> {
  const body = await gql(server, await admin(), '{ cdcSource { status { state slotName lastError } } }');
  return (body.data?.['cdcSource'] as { status: ReaderStatus | null } | null)?.status ?? undefined;
}

/** Sets the server's source (with `names`, if any) and the contacts mapping. */
async function configure(server: TestServer, url: string, names: { slotName?: string; publicationName?: string } = {}): Promise<void> {
  const token = await admin();
  const set = await gql(server, token, 'mutation($url: String!, $s: String, $p: String) { setCdcSource(databaseUrl: $url, slotName: $s, publicationName: $p) { database } }', {
    url,
    s: names.slotName ?? null,
    p: names.publicationName ?? null,
  });
  expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
  const saved = await gql(server, token, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: CONTACTS_MAPPING });
  expect(saved.errors, JSON.stringify(saved.errors)).toBeUndefined();
}

/** Waits until the server's reader streams; resolves with its slot. */
async function streamingSlot(server: TestServer, message: string): Promise<string> {
  const status = await waitFor(async () => {
    const current = await readerStatus(server);
    return current?.state === 'streaming' ? current : undefined;
  }, { message });
  return status!.slotName!;
}

/** A `changes(model: "contacts")` subscriber of tenant `a`, counted by the server before this resolves. */
async function subscriber(server: TestServer): Promise<RawSocket> {
  const before = server.stats().subscribers;
  const socket = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] }));
  sendChanges(socket, 'c', { m: 'contacts' });
  await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscribed' });
  return socket;
}

async function insert(pool: pg.Pool | pg.PoolClient, ...names: string[]): Promise<void> {
  for (const name of names) await pool.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', $1)`, [name]);
}

/** The names of the next `count` model changes (each a CREATED). */
async function created(feed: RawSocket, count: number): Promise<string[]> {
  const names: string[] = [];
  while (names.length < count) {
    const change = await nextChange(feed, 'c');
    expect(change.operation).toBe('CREATED');
    names.push(String(change.record?.['name']));
  }
  return names;
}

/** Asserts no further message is queued on the socket: a ping's pong comes first. */
async function expectNothingElse(socket: RawSocket): Promise<void> {
  socket.send({ type: 'ping' });
  expect(await socket.nextMessage()).toEqual({ type: 'pong' });
}

async function slotsOf(pool: pg.Pool): Promise<{ slot_name: string; active_pid: number | null }[]> {
  const { rows } = await pool.query<{ slot_name: string; active_pid: number | null }>(
    'SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = current_database() ORDER BY slot_name',
  );
  return rows;
}

async function walsenderOf(pool: pg.Pool, slot: string): Promise<number> {
  const pid = await waitFor(async () => (await slotsOf(pool)).find((row) => row.slot_name === slot)?.active_pid ?? undefined, { message: `${slot} is streamed` });
  return pid!;
}

describe('two deployments reading one source database', () => {
  it('each reads on a slot of its own and gets every change; the first misses nothing while the second comes and goes', { timeout: 90_000 }, async () => {
    const source = await contactsDatabase();
    // A: Postgres platform database. B: the embedded one, as a plain `npm start` would have.
    const first = await startTestServer(ENV);
    await configure(first, source.url);
    const slotA = await streamingSlot(first, 'the first deployment streams');
    const feedA = await subscriber(first);
    await insert(source.pool, 'before B');
    expect(await created(feedA, 1)).toEqual(['before B']);
    const walsenderA = await walsenderOf(source.pool, slotA);

    const second = await startTestServer(ENV, { embedded: true, autoDispose: false });
    onTestFinished(() => second.dispose());
    await configure(second, source.url);
    const slotB = await streamingSlot(second, 'the second deployment streams');
    const feedB = await subscriber(second);

    await insert(source.pool, 'while B 1', 'while B 2');
    expect(await created(feedB, 2)).toEqual(['while B 1', 'while B 2']);
    expect(await created(feedA, 2)).toEqual(['while B 1', 'while B 2']);
    // The first deployment's walsender was never cut off.
    expect(await walsenderOf(source.pool, slotA)).toBe(walsenderA);
    // One database, two deployments: the database's part of the names is the same, the deployment's is not.
    expect(slotA).toMatch(DEPLOYMENT_SLOT);
    expect(slotB).toMatch(DEPLOYMENT_SLOT);
    expect(DEPLOYMENT_SLOT.exec(slotB)?.[1]).toBe(DEPLOYMENT_SLOT.exec(slotA)?.[1]);
    expect(slotB).not.toBe(slotA);
    expect((await slotsOf(source.pool)).map((row) => row.slot_name).sort()).toEqual([slotA, slotB].sort());

    await second.dispose();
    await insert(source.pool, 'after B');
    expect(await created(feedA, 1)).toEqual(['after B']);
    await expectNothingElse(feedA);
    expect(await readerStatus(first)).toMatchObject({ state: 'streaming', slotName: slotA });
  });

  it('refuses a second deployment set on the first one’s slot (MISCONFIGURED, logged) without cutting the first off, and reads once the slot is free', { timeout: 90_000 }, async () => {
    const source = await contactsDatabase();
    const names = { slotName: uniqueName('shared_slot'), publicationName: uniqueName('shared_pub') };
    const first = await startTestServer(ENV, { autoDispose: false });
    onTestFinished(() => first.dispose());
    await configure(first, source.url, names);
    await streamingSlot(first, 'the first deployment streams');
    const walsender = await walsenderOf(source.pool, names.slotName);
    const feed = await subscriber(first);

    const logs = captureLogs();
    const second = await startTestServer({ ...ENV, LOG_LEVEL: 'warn' }, { logDestination: logs });
    await configure(second, source.url, names);
    const refused = await waitFor(async () => {
      const status = await readerStatus(second);
      return status?.lastError?.startsWith('MISCONFIGURED') === true ? status : undefined;
    }, { message: 'the second deployment is refused the slot' });
    expect(refused).toMatchObject({ state: 'failed', slotName: names.slotName });
    expect(refused?.lastError).toContain(`replication slot "${names.slotName}" is streamed by another reader`);
    expect(refused?.lastError).toContain(`backend ${walsender}`);
    expect(logs.lines.some((line) => line.level === 40 && String(line['slot']) === names.slotName && line.msg.includes('another reader'))).toBe(true);

    // The first one streams on, from the walsender it had.
    await insert(source.pool, 'while refused');
    expect(await created(feed, 1)).toEqual(['while refused']);
    expect(await walsenderOf(source.pool, names.slotName)).toBe(walsender);
    expect(await readerStatus(first)).toMatchObject({ state: 'streaming', lastError: null });

    // Once the first stops, the slot is free: the second reads it.
    await first.dispose();
    await streamingSlot(second, 'the second deployment streams once the slot is free');
  });

  it('tells a subscriber to resync when another reader confirmed changes on its slot while its reader was away', { timeout: 90_000 }, async () => {
    const source = await contactsDatabase();
    const proxy = await startTcpProxy(Number(new URL(source.url).port));
    const proxied = new URL(source.url);
    proxied.port = String(proxy.port);
    const server = await startTestServer(ENV);
    await configure(server, proxied.toString());
    const slot = await streamingSlot(server, 'the reader streams');
    const feed = await subscriber(server);
    await insert(source.pool, 'first');
    expect(await created(feed, 1)).toEqual(['first']);

    // The reader is cut off; meanwhile another reader consumes a change on its slot.
    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(async () => (await slotsOf(source.pool)).find((row) => row.slot_name === slot)?.active_pid === null, { message: 'the walsender is gone' });
    // Committed with a flush (the test cluster does not wait for one): a slot advances only over flushed WAL.
    const writer = await source.pool.connect();
    try {
      await writer.query('BEGIN');
      await writer.query('SET LOCAL synchronous_commit = on');
      await insert(writer, 'taken by another');
      await writer.query('COMMIT');
    } finally {
      writer.release();
    }
    // Up to what is flushed (which the change is, committed with a flush): other tests' writes on the
    // shared cluster may move the current position past the flushed one meanwhile.
    const { rows } = await source.pool.query<{ moved: boolean }>(
      'SELECT a.end_lsn >= t.lsn AS moved FROM (SELECT pg_current_wal_flush_lsn() AS lsn) t, LATERAL pg_replication_slot_advance($1, t.lsn) a',
      [slot],
    );
    expect(rows).toEqual([{ moved: true }]);
    proxy.refuse(false);
    await insert(source.pool, 'after');

    const resync = await feed.nextMessage();
    expect(resync).toMatchObject({ id: 'c', type: 'error', payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] });
  });

  it('keeps the slot of a deployment that read CDC before the upgrade (the name without the deployment’s part)', { timeout: 90_000 }, async () => {
    const logger = createLogger({ level: 'silent' });
    const source = await contactsDatabase();
    const platform = await createTestDatabase();
    const db = createPostgresDatabase({ url: platform.url, logger });
    try {
      // The platform database as the previous version left it: a source, its reader's status, its slot.
      await migrateBefore(db, '0036');
      const client = await source.pool.connect();
      const identity = await identifyDatabase(client).finally(() => client.release());
      const { slotName } = defaultReplicationNames(identity);
      const { rows } = await source.pool.query<{ lsn: string }>(`SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [slotName]);
      await db.query('INSERT INTO cdc_sources (app, env, database_url) VALUES ($1, $2, $3)', ['shop', 'prod', source.url]);
      await db.query('INSERT INTO cdc_mappings (app, env, name, definition) VALUES ($1, $2, $3, $4)', ['shop', 'prod', 'contacts', JSON.stringify(CONTACTS_MAPPING)]);
      await db.query(`INSERT INTO cdc_reader_status (source, state, last_lsn) VALUES ($1, 'streaming', $2)`, [sourceIdOf(identity), rows[0]!.lsn]);
    } finally {
      await db.close();
    }

    const server = await startTestServer({ ...ENV, DATABASE_URL: platform.url });
    const client = await source.pool.connect();
    const { slotName: legacy } = defaultReplicationNames(await identifyDatabase(client).finally(() => client.release()));
    expect(await streamingSlot(server, 'the upgraded deployment streams')).toBe(legacy);
    expect((await slotsOf(source.pool)).map((row) => row.slot_name)).toEqual([legacy]);
    const { rows } = await openTestPool(platform.url).query<{ slot_lost_at: Date | null }>('SELECT slot_lost_at FROM cdc_reader_status');
    expect(rows).toEqual([{ slot_lost_at: null }]);
    const feed = await subscriber(server);
    await insert(source.pool, 'after the upgrade');
    expect(await created(feed, 1)).toEqual(['after the upgrade']);
  });
});
