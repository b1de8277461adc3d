import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, uniqueName } from '../helpers/services.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

/*
 * Database CDC end to end: a source database of its own (logical WAL on the shared cluster), a
 * server with its own slot and publication, mappings saved over GraphQL, `changes` subscribers.
 */

const CONTACTS_MAPPING = {
  name: 'contacts',
  table: 'contacts',
  events: ['insert', 'update', 'delete'],
  topic: 'crm.contact-events',
  module: 'crm',
  model: 'contacts',
  tenantColumn: 'tenant_id',
};

interface CdcSetup {
  readonly server: TestServer;
  readonly source: pg.Pool;
  readonly sourceUrl: string;
  readonly admin: string;
}

async function setUp(env: Record<string, string> = {}): Promise<CdcSetup> {
  const database = await createTestDatabase();
  const source = new pg.Pool({ connectionString: database.url, max: 2 });
  source.on('error', () => {});
  onTestFinished(() => source.end());
  await source.query(`CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)`);
  await source.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
  const server = await startTestServer({
    JWT_SECRET: TEST_SECRET,
    CDC_SLOT_NAME: uniqueName('slot'),
    CDC_PUBLICATION_NAME: uniqueName('pub'),
    CDC_RELOAD_INTERVAL_MS: '200',
    ...env,
  });
  const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
  const set = await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host database } }', { url: database.url });
  expect(set.errors).toBeUndefined();
  // Changes are captured from the moment the slot exists: wait until the reader streams.
  await waitFor(
    async () => {
      const body = await gql(server, admin, '{ cdcSource { status { state } } }');
      return (body.data?.['cdcSource'] as { status: { state: string } | null } | null)?.status?.state === 'streaming';
    },
    { message: 'the CDC reader streams' },
  );
  return { server, source, sourceUrl: database.url, admin };
}

async function gql(server: TestServer, token: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

async function saveMapping(setup: CdcSetup, mapping: unknown): Promise<GraphQLResponseBody> {
  return gql(setup.server, setup.admin, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name model } }', { m: mapping });
}

async function subscribeChanges(setup: CdcSetup, claims: TokenClaims, variables: Record<string, unknown>): Promise<RawSocket> {
  const client = await openAcknowledgedSocket(setup.server.wsUrl, await signHs256(claims));
  client.send({
    id: 'c',
    type: 'subscribe',
    payload: {
      query: 'subscription($m: String!, $f: JSON, $a: String) { changes(model: $m, filter: $f, after: $a) { operation model id record cursor lastUpdatedAt } }',
      variables,
    },
  });
  return client;
}

interface ModelChange {
  operation: string;
  model: string;
  id: string;
  record: Record<string, unknown> | null;
  cursor: string;
}

async function nextChange(client: RawSocket): Promise<ModelChange> {
  const message = await client.nextMessage();
  expect(message, JSON.stringify(message)).toMatchObject({ type: 'next' });
  return (message.payload as { data: { changes: ModelChange } }).data.changes;
}

describe('database CDC', () => {
  it('turns inserts, updates and deletes into model changes for the right tenant, filtered on the server', async () => {
    const setup = await setUp();
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

  it('refuses a tenant-routed delete mapping on a table without REPLICA IDENTITY FULL, saying how to fix it', async () => {
    const setup = await setUp();
    await setup.source.query('ALTER TABLE contacts REPLICA IDENTITY DEFAULT');
    const refused = await saveMapping(setup, CONTACTS_MAPPING);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(refused.errors?.[0]?.message).toContain('REPLICA IDENTITY FULL');
  });
});
