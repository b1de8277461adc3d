/**
 * Helpers for the database CDC integration suites: a source database of the test's own (logical
 * WAL on the shared cluster), a server pointed at it (slots are named per database, so each test has its own), mappings
 * saved over GraphQL, and `changes` / `events` subscriptions over raw graphql-transport-ws sockets.
 * Every wait is on a message, a response or server state, never on time.
 */
import type pg from 'pg';
import { expect } from 'vitest';
import { createTestDatabase, openTestPool } from './services.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from './tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from './tributary.ts';
import { waitFor } from './wait-for.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from './ws-client.ts';

/** Model `contacts` of module `crm`, routed by `tenant_id`, on the `contacts` table `setUpCdc` creates. */
export const CONTACTS_MAPPING = {
  name: 'contacts',
  table: 'contacts',
  events: ['insert', 'update', 'delete'],
  topic: 'crm.contact-events',
  module: 'crm',
  model: 'contacts',
  tenantColumn: 'tenant_id',
};

export interface CdcSetup {
  readonly server: TestServer;
  /** A pool on the source database (two connections). */
  readonly source: pg.Pool;
  readonly sourceUrl: string;
  /** An admin token of app `shop`, env `prod`, without a tenant. */
  readonly admin: string;
}

export interface CdcSetupOptions {
  /** Server environment on top of the CDC defaults. */
  readonly env?: Record<string, string>;
  /**
   * A password put into the source URL handed to `setCdcSource` (the test cluster trusts
   * 127.0.0.1, so any password connects): lets a test check it is never returned.
   */
  readonly password?: string;
  /** Run the server on the embedded platform database (PGlite) instead of a Postgres one. @default false */
  readonly embedded?: boolean;
}

/**
 * A source database with table `contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status
 * text, name text)` in REPLICA IDENTITY FULL, and a server reading it, streaming: changes
 * committed after this resolves are captured.
 */
export async function setUpCdc(options: CdcSetupOptions = {}): Promise<CdcSetup> {
  const database = await createTestDatabase();
  const source = openTestPool(database.url);
  await source.query(`CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)`);
  await source.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
  const server = await startTestServer({
    JWT_SECRET: TEST_SECRET,
    CDC_RELOAD_INTERVAL_MS: '200',
    ...options.env,
  }, { embedded: options.embedded === true });
  const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
  const url = new URL(database.url);
  if (options.password !== undefined) url.password = options.password;
  await setSourceStreaming(server, admin, url.toString());
  return { server, source, sourceUrl: url.toString(), admin };
}

export async function gql(server: TestServer, token: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

export async function saveMapping(setup: CdcSetup, mapping: unknown, token = setup.admin): Promise<GraphQLResponseBody> {
  return gql(setup.server, token, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name model } }', { m: mapping });
}

/** Saves a mapping and fails the test if it is refused. */
export async function saveMappingOk(setup: CdcSetup, mapping: unknown): Promise<void> {
  const body = await saveMapping(setup, mapping);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
}

export const CHANGES_SUBSCRIPTION =
  'subscription($m: String!, $f: JSON, $a: String) { changes(model: $m, filter: $f, after: $a) { operation model id record cursor lastUpdatedAt } }';

/** `changes` variables: `m` the model, `f` the filter, `a` the cursor to resume after. */
export interface ChangesVariables {
  readonly m: string;
  readonly f?: unknown;
  readonly a?: string;
}

/** Sends `subscribe` for `changes` on an open socket. */
export function sendChanges(client: RawSocket, id: string, variables: ChangesVariables): void {
  client.send({ id, type: 'subscribe', payload: { query: CHANGES_SUBSCRIPTION, variables } });
}

/** Inserts a row into `contacts`. */
export async function insertContact(setup: CdcSetup, tenant: string, name: string, status: string | null = 'lead'): Promise<void> {
  await setup.source.query('INSERT INTO contacts (tenant_id, status, name) VALUES ($1, $2, $3)', [tenant, status, name]);
}

/** An acknowledged socket with a token of `claims`. */
export async function socketFor(setup: CdcSetup, claims: TokenClaims): Promise<RawSocket> {
  return openAcknowledgedSocket(setup.server.wsUrl, await signHs256(claims));
}

/** Opens a socket with a token of `claims` and subscribes to `changes` as `c`. */
export async function subscribeChanges(setup: CdcSetup, claims: TokenClaims, variables: ChangesVariables): Promise<RawSocket> {
  const client = await openAcknowledgedSocket(setup.server.wsUrl, await signHs256(claims));
  sendChanges(client, 'c', variables);
  return client;
}

export interface ModelChange {
  readonly operation: string;
  readonly model: string;
  readonly id: string;
  readonly record: Record<string, unknown> | null;
  readonly cursor: string;
  readonly lastUpdatedAt: string;
}

/** The model change of a `next` message, or an error naming what arrived instead. */
export function changeOf(message: ReceivedMessage): ModelChange {
  const change = (message.payload as { data?: { changes?: ModelChange } } | undefined)?.data?.changes;
  if (message.type !== 'next' || !change) throw new Error(`expected a model change, got ${JSON.stringify(message)}`);
  return change;
}

/** The next message, which must be a model change (of subscription `id` when given). */
export async function nextChange(client: RawSocket, id?: string): Promise<ModelChange> {
  const message = await client.nextMessage();
  expect(message, JSON.stringify(message)).toMatchObject({ type: 'next', ...(id !== undefined && { id }) });
  return changeOf(message);
}

/** The next `count` messages, each a model change of subscription `id`. */
export async function takeChanges(client: RawSocket, id: string, count: number): Promise<ModelChange[]> {
  const changes: ModelChange[] = [];
  while (changes.length < count) changes.push(await nextChange(client, id));
  return changes;
}

/** The next `count` messages, whatever subscription they belong to (for sockets with several). */
export async function takeMessages(client: RawSocket, count: number): Promise<ReceivedMessage[]> {
  const taken: ReceivedMessage[] = [];
  while (taken.length < count) taken.push(await client.nextMessage());
  return taken;
}

/**
 * Asserts the subscription `id` was refused by its resolver — a `next` with the error whose
 * extensions include `extensions`, then `complete` — and that it got no data.
 */
export async function expectRefused(client: RawSocket, id: string, extensions: Record<string, unknown>): Promise<void> {
  const refused = await client.nextMessage();
  expect(refused, JSON.stringify(refused)).toMatchObject({ id, type: 'next', payload: { errors: [{ extensions }] } });
  expect((refused.payload as { data?: unknown }).data ?? null).toBeNull();
  expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
}

/** The one error of a GraphQL response (fails the test when there is not exactly one). */
export function errorOf(body: GraphQLResponseBody): { message: string; extensions?: Record<string, unknown> } | undefined {
  expect(body.errors?.length ?? 0, JSON.stringify(body)).toBe(1);
  return body.errors?.[0];
}

/**
 * The value of one sample of a metric on `GET /metrics`, the one whose labels include `labels`;
 * 0 when it has no sample yet.
 */
export async function metricSample(server: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`${server.url}/metrics`);
  expect(response.status).toBe(200);
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  let total = 0;
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const present = (match[2] ?? '').split(',');
    if (wanted.every((label) => present.includes(label))) total += Number(match[3]);
  }
  return total;
}

/** `changes` subscriptions refused silently so far (no permission, or no such model). */
export function deniedChanges(server: TestServer): Promise<number> {
  return metricSample(server, 'tributary_subscriptions_denied_total', { field: 'changes' });
}

/**
 * Points the server's environment at `url` (`setCdcSource`) and waits until its reader streams:
 * changes are captured from the moment the slot exists.
 */
export async function setSourceStreaming(server: TestServer, admin: string, url: string): Promise<void> {
  const set = await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host database } }', { url });
  expect(set.errors).toBeUndefined();
  await waitFor(
    async () => {
      const body = await gql(server, admin, '{ cdcSource { status { state } } }');
      return (body.data?.['cdcSource'] as { status: { state: string } | null } | null)?.status?.state === 'streaming';
    },
    { message: 'the CDC reader streams' },
  );
}
