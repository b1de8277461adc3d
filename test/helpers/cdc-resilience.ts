/**
 * Helpers for the CDC resilience suite: a source table whose history can be checked, servers
 * (in this process or in a child process that can be paused), subscribers that record every
 * row change they receive, and the check that a received history is complete and in order.
 *
 * The source table `items (id, tenant_id, value, pad)`: a row is inserted with value 0 and every
 * update adds 1, one transaction each, so a row with value v has the history 0, 1, …, v — the
 * table at the end of a test says what every subscriber must have received, whatever commits an
 * outage made uncertain.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type pg from 'pg';
import { expect, onTestFinished } from 'vitest';
import { defaultReplicationNames, identifyDatabase, type ReplicationNames } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { streamKeys } from '../../src/pipeline/redis-keys.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { openTestPool } from './services.ts';
import { signHs256, TEST_SECRET } from './tokens.ts';
import { postGraphQL, type GraphQLResponseBody } from './tributary.ts';
import { waitFor } from './wait-for.ts';
import { openAcknowledgedSocket, type CloseEvent, type RawSocket, type ReceivedMessage } from './ws-client.ts';

/** Events of `items` on topic `inv.item-events` and model `inv.items`, routed by tenant. */
export const ITEMS_MAPPING = {
  name: 'items',
  table: 'items',
  events: ['insert', 'update'],
  topic: 'inv.item-events',
  module: 'inv',
  model: 'items',
  tenantColumn: 'tenant_id',
  payload: { id: '$row.id', value: '$row.value' },
};

export const ITEMS_TOPIC = ITEMS_MAPPING.topic;
export const TENANT = 't1';
/** The app and env of every token (tokens.ts defaults). */
const APP = 'shop';
const ENV = 'prod';

/** A server's addresses, wherever it runs. */
export interface ServerAddress {
  readonly graphqlUrl: string;
  readonly wsUrl: string;
}

/** Variables every CDC server of a test shares (slots are named per database, so each test's database has its own). */
export function cdcEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    JWT_SECRET: TEST_SECRET,
    CDC_RELOAD_INTERVAL_MS: '200',
    ...extra,
  };
}

/** The slot and publication names derived from this database's identity (the publication's; a slot's first part). */
export async function derivedNamesOf(pool: pg.Pool): Promise<ReplicationNames> {
  const client = await pool.connect();
  try {
    return defaultReplicationNames(await identifyDatabase(client));
  } finally {
    client.release();
  }
}

/**
 * The slot and publication a server uses for this database when its source sets no names: the
 * derived publication, and the slot its deployment reads (the derived name, then the deployment's
 * part). Ask once a server has started reading the database.
 */
export async function replicationNamesOf(pool: pg.Pool): Promise<ReplicationNames> {
  const derived = await derivedNamesOf(pool);
  const { rows } = await pool.query<{ slot_name: string }>(
    'SELECT slot_name FROM pg_replication_slots WHERE database = current_database() AND starts_with(slot_name, $1)',
    [`${derived.slotName}_`],
  );
  if (rows.length !== 1) throw new Error(`expected the slot of one deployment on the database, found ${rows.length}`);
  return { slotName: rows[0]!.slot_name, publicationName: derived.publicationName };
}

/** A pool on the source database, closed when the test ends; survives server restarts under it. */
export function openPool(url: string): pg.Pool {
  return openTestPool(url, { max: 3 });
}

export async function createItemsTable(pool: pg.Pool): Promise<void> {
  await pool.query(`CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL, value int NOT NULL, pad text)`);
}

/** Inserts each id (value 0), one transaction per row; idempotent, so a retry after an outage is safe. */
export async function insertItems(pool: pg.Pool, ids: readonly number[], tenant = TENANT): Promise<void> {
  for (const id of ids) {
    await pool.query('INSERT INTO items (id, tenant_id, value) VALUES ($1, $2, 0) ON CONFLICT (id) DO NOTHING', [id, tenant]);
  }
}

/** Adds 1 to the value of each id, one transaction per row, `rounds` times over. */
export async function bumpItems(pool: pg.Pool, ids: readonly number[], rounds = 1): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    for (const id of ids) await pool.query('UPDATE items SET value = value + 1 WHERE id = $1', [id]);
  }
}

export interface ItemRow {
  readonly id: number;
  readonly value: number;
}

export async function itemRows(pool: pg.Pool, tenant = TENANT): Promise<ItemRow[]> {
  const { rows } = await pool.query<ItemRow>('SELECT id, value FROM items WHERE tenant_id = $1 ORDER BY id', [tenant]);
  return rows;
}

/** `from, from + 1, …, to`. */
export function ids(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** The current end of the WAL: everything committed before this call lies before it. */
export async function currentWalLsn(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]!.lsn;
}

export interface SlotRow {
  readonly active_pid: number | null;
  readonly confirmed_flush_lsn: string | null;
  readonly restart_lsn: string | null;
}

export async function slotRow(pool: pg.Pool, slotName: string): Promise<SlotRow | undefined> {
  const { rows } = await pool.query<SlotRow>(
    'SELECT active_pid, confirmed_flush_lsn::text, restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1',
    [slotName],
  );
  return rows[0];
}

/** `a - b` in bytes, computed by Postgres. */
export async function lsnDiff(pool: pg.Pool, a: string, b: string): Promise<number> {
  const { rows } = await pool.query<{ diff: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS diff', [a, b]);
  return Number(rows[0]!.diff);
}

/** Ends the walsender that streams the slot now (the reader reconnects). Resolves with its pid. */
export async function terminateWalsender(pool: pg.Pool, slotName: string): Promise<number> {
  const pid = await waitFor(async () => (await slotRow(pool, slotName))?.active_pid ?? 0, { message: `a walsender streams ${slotName}` });
  await pool.query('SELECT pg_terminate_backend($1)', [pid]);
  return pid;
}

// ---------------------------------------------------------------------------------------------
// Administration over GraphQL

export async function gql(server: ServerAddress, token: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

export function adminToken(): Promise<string> {
  return signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
}

/** Points the environment at `sourceUrl` and saves the mapping, on `server`; fails the test on any error. */
export async function configureSource(server: ServerAddress, sourceUrl: string, mapping: object = ITEMS_MAPPING): Promise<void> {
  const admin = await adminToken();
  const set = await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: sourceUrl });
  expect(set.errors).toBeUndefined();
  const saved = await gql(server, admin, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: mapping });
  expect(saved.errors).toBeUndefined();
}

export interface ReaderStatus {
  readonly state: string;
  readonly leading: boolean;
  readonly lastAcknowledgedLsn: string | null;
  readonly lagBytes: number | null;
  readonly retainedWalBytes: number | null;
  readonly lastError: string | null;
}

/** The admin status query, as `server` answers it. */
export async function readerStatus(server: ServerAddress): Promise<ReaderStatus | null> {
  const body = await gql(
    server,
    await adminToken(),
    '{ cdcSource { status { state leading lastAcknowledgedLsn lagBytes retainedWalBytes lastError } } }',
  );
  if (body.errors) throw new Error(`cdcSource failed: ${JSON.stringify(body.errors)}`);
  return (body.data?.['cdcSource'] as { status: ReaderStatus | null } | null)?.status ?? null;
}

/** Polls the status until `accept` holds (it may query more), and resolves with that status. */
export async function waitForStatus(
  server: ServerAddress,
  accept: (status: ReaderStatus) => boolean | Promise<boolean>,
  options: { timeoutMs: number; message: string },
): Promise<ReaderStatus> {
  let accepted: ReaderStatus | undefined;
  await waitFor(async () => {
    const status = await readerStatus(server);
    if (status && (await accept(status))) accepted = status;
    return accepted !== undefined;
  }, options);
  return accepted!;
}

/** Waits until `server` itself reads the slot and streams. */
export async function waitUntilLeading(server: ServerAddress, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => {
      const status = await readerStatus(server);
      return status?.leading === true && status.state === 'streaming';
    },
    { timeoutMs, message: 'the CDC reader leads and streams' },
  );
}

// ---------------------------------------------------------------------------------------------
// Subscribers

/** One row change as a subscriber received it. */
export interface ItemChange {
  /** The event id (`events`); undefined for `changes`, which does not carry it. */
  readonly eventId: string | undefined;
  readonly entity: number;
  readonly value: number;
  readonly cursor: string;
}

/** What one socket received for the `events(topic:)` (id `e`) and `changes(model:)` (id `c`) subscriptions. */
export interface ItemsFeed {
  readonly client: RawSocket;
  readonly events: ItemChange[];
  readonly changes: ItemChange[];
  /** Messages other than `next` (errors, completes), in order. */
  readonly others: ReceivedMessage[];
  /** How the socket closed, once it has. */
  closedWith: CloseEvent | undefined;
}

export interface FeedOptions {
  readonly tenant?: string;
  /** Resume `events` after this cursor. */
  readonly eventsAfter?: string;
  /** Resume `changes` after this cursor. */
  readonly changesAfter?: string;
}

const EVENTS = 'subscription($t: String!, $a: String) { events(topic: $t, after: $a) { id payload cursor } }';
const CHANGES = 'subscription($m: String!, $a: String) { changes(model: $m, after: $a) { id record cursor } }';

/**
 * Opens a socket with both subscriptions of `tenant` and records everything that arrives, in the
 * background, until the socket closes. Wait for the server's subscriber count before writing.
 */
export async function subscribeItems(server: ServerAddress, options: FeedOptions = {}): Promise<ItemsFeed> {
  const token = await signHs256({ tenant: options.tenant ?? TENANT, permissions: ['inv.items.read', 'inv.item-events.read'] });
  const client = await openAcknowledgedSocket(server.wsUrl, token);
  const feed: ItemsFeed = { client, events: [], changes: [], others: [], closedWith: undefined };
  client.send({ id: 'e', type: 'subscribe', payload: { query: EVENTS, variables: { t: ITEMS_TOPIC, a: options.eventsAfter } } });
  client.send({ id: 'c', type: 'subscribe', payload: { query: CHANGES, variables: { m: ITEMS_MAPPING.model, a: options.changesAfter } } });
  void (async () => {
    for (;;) {
      let message: ReceivedMessage;
      try {
        message = await client.nextMessage();
      } catch {
        feed.closedWith = await client.closed();
        return;
      }
      const data = (message.payload as { data?: Record<string, unknown> | null } | undefined)?.data;
      if (message.type === 'next' && message.id === 'e' && data?.['events']) {
        const event = data['events'] as { id: string; payload: { id: number; value: number }; cursor: string };
        feed.events.push({ eventId: event.id, entity: event.payload.id, value: event.payload.value, cursor: event.cursor });
      } else if (message.type === 'next' && message.id === 'c' && data?.['changes']) {
        const change = data['changes'] as { id: string; record: { value: number }; cursor: string };
        feed.changes.push({ eventId: undefined, entity: Number(change.id), value: change.record.value, cursor: change.cursor });
      } else {
        feed.others.push(message);
      }
    }
  })();
  return feed;
}

/** True once `received` holds the current value of every row (not yet that nothing is missing). */
export function reachesTable(received: readonly ItemChange[], rows: readonly ItemRow[]): boolean {
  const seen = new Set(received.map((change) => `${change.entity}:${change.value}`));
  return rows.every((row) => seen.has(`${row.id}:${row.value}`));
}

/** A subscription's received changes, or a function that gathers them now (e.g. from several sockets). */
export type Received = readonly ItemChange[] | (() => readonly ItemChange[]);

/** Waits until every list holds the table's current state; resolves with the table's rows. */
export async function waitUntilDelivered(pool: pg.Pool, lists: readonly Received[], timeoutMs = 20_000): Promise<ItemRow[]> {
  let rows: ItemRow[] = [];
  await waitFor(
    async () => {
      rows = await itemRows(pool);
      const lacking = lists.filter((list) => !reachesTable(typeof list === 'function' ? list() : list, rows)).length;
      if (lacking > 0) throw new Error(`${lacking} subscription(s) lack changes of the ${rows.length} rows in the table`);
      return true;
    },
    { timeoutMs, message: 'every subscriber holds the table' },
  );
  return rows;
}

export interface HistoryReport {
  /** Changes received. */
  readonly received: number;
  /** Distinct changes (by event id for `events`, by entity and value for `changes`). */
  readonly distinct: number;
  /** `received - distinct`: redeliveries (at least once). */
  readonly duplicates: number;
}

/**
 * Asserts that `received` is the complete history of `rows`: per row exactly the values 0…v in
 * that order once redeliveries are dropped (first occurrence kept), nothing of another row, and —
 * where event ids are known — one id per change, the same every time it is delivered.
 */
export function expectCompleteHistory(received: readonly ItemChange[], rows: readonly ItemRow[]): HistoryReport {
  const changeOfId = new Map<string, string>();
  const idOfChange = new Map<string, string>();
  const firstSeen = new Map<number, number[]>();
  const seen = new Set<string>();
  for (const change of received) {
    const key = `${change.entity}:${change.value}`;
    if (change.eventId !== undefined) {
      // A redelivery carries the id of the first delivery, and an id never names two changes.
      expect(changeOfId.get(change.eventId) ?? key, `event ${change.eventId}`).toBe(key);
      expect(idOfChange.get(key) ?? change.eventId, `the id of change ${key}`).toBe(change.eventId);
      changeOfId.set(change.eventId, key);
      idOfChange.set(key, change.eventId);
    }
    if (seen.has(key)) continue;
    seen.add(key);
    firstSeen.set(change.entity, [...(firstSeen.get(change.entity) ?? []), change.value]);
  }
  const expected = new Map(rows.map((row) => [row.id, ids(0, row.value)]));
  expect(Object.fromEntries(firstSeen)).toEqual(Object.fromEntries(expected));
  return { received: received.length, distinct: seen.size, duplicates: received.length - seen.size };
}

// ---------------------------------------------------------------------------------------------
// Redis

/** The log key of the mapping topic's stream of `tenant` under `keyPrefix`. */
export function itemEventsLogKey(keyPrefix: string, tenant: string): string {
  return streamKeys(keyPrefix, streamOf({ app: APP, env: ENV, tenant }, ITEMS_TOPIC)).log;
}

// ---------------------------------------------------------------------------------------------
// A server in a child process

export interface ChildServer extends ServerAddress {
  /** Sends a signal: SIGSTOP pauses the whole process (timers, sockets), SIGCONT resumes it. */
  signal(name: NodeJS.Signals): void;
}

const MAIN_URL = new URL('../../src/main.ts', import.meta.url).href;
const CONFIG_URL = new URL('../../src/config.ts', import.meta.url).href;
const LOGGER_URL = new URL('../../src/logger.ts', import.meta.url).href;

/**
 * The same `startTributary` as `startTestServer`, in a process of its own so that it can really
 * be paused. Killed when the test ends.
 */
export async function startChildServer(env: Record<string, string>): Promise<ChildServer> {
  const config = {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: 'memory://',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    ...env,
  };
  const code = `
    const { loadConfig } = await import(${JSON.stringify(CONFIG_URL)});
    const { createLogger } = await import(${JSON.stringify(LOGGER_URL)});
    const { startTributary } = await import(${JSON.stringify(MAIN_URL)});
    const config = loadConfig(${JSON.stringify(config)});
    const tributary = await startTributary(config, { logger: createLogger({ level: config.logLevel, destination: process.stderr }) });
    process.stdout.write(JSON.stringify({ port: tributary.port }) + '\\n');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-20_000)));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (exitCode, signal) => reject(new Error(`the child server exited (${exitCode ?? signal}):\n${stderr}`)));
  });
  return {
    graphqlUrl: `http://127.0.0.1:${port}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    signal: (name) => child.kill(name),
  };
}

/**
 * Recreates the source's replication slot the way an operator's `pg_drop_replication_slot` does:
 * ends its walsender, drops it before the reader reconnects, and waits until the reader streams
 * from the new slot it created (which starts new epochs for the source's streams).
 */
export async function dropSlotUntilRecreated(pool: pg.Pool, slotName: string): Promise<void> {
  await waitFor(
    async () => {
      const slot = await slotRow(pool, slotName);
      if (slot?.active_pid != null) {
        await pool.query('SELECT pg_terminate_backend($1)', [slot.active_pid]);
        return false;
      }
      await pool.query('SELECT pg_drop_replication_slot($1)', [slotName]);
      return true;
    },
    { intervalMs: 5, message: 'the slot is dropped' },
  );
  // While the slot is being created, the creating backend holds it: wait for a walsender.
  await waitFor(
    async () => {
      const { rows } = await pool.query<{ streaming: boolean }>(
        `SELECT a.backend_type = 'walsender' AS streaming FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
          WHERE s.slot_name = $1`,
        [slotName],
      );
      return rows[0]?.streaming === true;
    },
    { timeoutMs: 10_000, message: 'a new slot streams' },
  );
}
