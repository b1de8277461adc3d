/**
 * Updates that leave a large (TOASTed) value unchanged, through a real server and a real source
 * database: without REPLICA IDENTITY FULL, pgoutput does not send such a value ('u'), so the
 * change's `record` cannot hold it. It must say so (`unchangedColumns`) — never pass a partial
 * record for a whole one — saving the mapping must warn the admin, and a client that merges the
 * change into the row it holds (the SDK, the Apollo and urql examples) keeps the value.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApolloClient, watchContacts as watchWithApollo, type Contact } from '../../examples/apollo/contacts.ts';
import { createUrqlClient, watchContacts as watchWithUrql } from '../../examples/urql/contacts.ts';
import { CONTACTS_MAPPING, gql, setSourceStreaming, socketFor, type CdcSetup } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, startTestServer, type LogLine } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** Without REPLICA IDENTITY FULL a delete carries the key only, not the tenant: inserts and updates. */
const MAPPING = { ...CONTACTS_MAPPING, events: ['insert', 'update'] };
const READER = { tenant: 'a', permissions: ['crm.contacts.read'] };
const SAVE = 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name warnings } }';
const CHANGES = 'subscription { changes(model: "contacts") { operation id record unchangedColumns } }';
/** About 12.8 KB of hex digits, which pglz cannot shrink under the 2 KB TOAST threshold: stored out of line. */
const LARGE = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) AS g)";
const LARGE_LENGTH = 12_800;

type ToastSetup = CdcSetup & { readonly logs: readonly LogLine[] };

/** `contacts` with a `notes` column, in the given replica identity, and a server streaming it (logs kept). */
async function setUp(identity: 'DEFAULT' | 'FULL'): Promise<ToastSetup> {
  const database = await createTestDatabase();
  const source = openTestPool(database.url);
  await source.query('CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text, notes text, visits int)');
  await source.query(`ALTER TABLE contacts REPLICA IDENTITY ${identity}`);
  const sink = captureLogs();
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', LOG_LEVEL: 'info' }, { logDestination: sink });
  const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
  await setSourceStreaming(server, admin, database.url);
  return { server, source, sourceUrl: database.url, admin, logs: sink.lines };
}

/** Saves the mapping; its answer's `warnings`. */
async function save(setup: ToastSetup, mapping: unknown): Promise<readonly string[] | null> {
  const body = await gql(setup.server, setup.admin, SAVE, { m: mapping });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['saveCdcMapping'] as { warnings: readonly string[] | null }).warnings;
}

async function subscribed(setup: ToastSetup) {
  const before = setup.server.stats().subscribers;
  const changes = await socketFor(setup, READER);
  changes.send({ id: 'u', type: 'subscribe', payload: { query: CHANGES } });
  const stream = await socketFor(setup, READER);
  stream.send({ id: 'e', type: 'subscribe', payload: { query: 'subscription { events(topic: "crm.contacts") { type payload } }' } });
  await waitFor(() => setup.server.stats().subscribers === before + 2, { message: 'the subscriptions are registered' });
  return { changes, stream };
}

interface Detailed {
  readonly operation: string;
  readonly id: string;
  readonly record: Record<string, unknown> | null;
  readonly unchangedColumns: readonly string[];
}

async function nextDetailed(client: Awaited<ReturnType<typeof subscribed>>['changes']): Promise<Detailed> {
  const message = await client.nextMessage();
  expect(message, JSON.stringify(message)).toMatchObject({ id: 'u', type: 'next' });
  return (message.payload as { data: { changes: Detailed } }).data.changes;
}

describe('CDC updates that leave a TOASTed column unchanged', () => {
  it('lists the columns an update did not send, on changes and on the model stream, and warns when the mapping is saved', async () => {
    const setup = await setUp('DEFAULT');
    const warnings = await save(setup, MAPPING);
    expect(warnings).toHaveLength(1);
    expect(warnings?.[0]).toContain('REPLICA IDENTITY FULL');
    expect(warnings?.[0]).toContain('"notes"');
    expect(warnings?.[0]).toContain('unchangedColumns');
    const logged = setup.logs.find((line) => line.msg === 'CDC mapping saved with warnings');
    expect(logged, JSON.stringify(setup.logs.filter((line) => line.level >= 40))).toMatchObject({ level: 40, mapping: 'contacts', table: 'public.contacts', warnings });
    // Listed, the mapping's warnings are read from its table as it is now: the same.
    await waitFor(async () => {
      const listed = await gql(setup.server, setup.admin, '{ cdcMappings { name warnings } }');
      return JSON.stringify(listed.data?.['cdcMappings']) === JSON.stringify([{ name: 'contacts', warnings }]);
    }, { message: 'cdcMappings lists the same warnings' });
    const { changes, stream } = await subscribed(setup);

    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (1, 'a', 'active', 'Ann', ${LARGE})`);
    const created = await nextDetailed(changes);
    expect(created).toMatchObject({ operation: 'CREATED', id: '1', unchangedColumns: [] });
    expect(String(created.record?.['notes'])).toHaveLength(LARGE_LENGTH);
    const onStream = await stream.nextMessage();
    expect((onStream.payload as { data: { events: { payload: Record<string, unknown> } } }).data.events.payload).not.toHaveProperty('unchangedColumns');

    // The update changes the name only: Postgres does not send `notes`.
    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE id = 1`);
    const updated = await nextDetailed(changes);
    expect(updated).toMatchObject({ operation: 'UPDATED', id: '1', record: { id: 1, name: 'Ann B.', status: 'active' }, unchangedColumns: ['notes'] });
    expect(updated.record).not.toHaveProperty('notes');
    // The model stream's event (what `events` and webhooks of `crm.contacts` receive) says it too.
    const updatedOnStream = await stream.nextMessage();
    expect(updatedOnStream.payload).toMatchObject({ data: { events: { type: 'contacts.updated', payload: { operation: 'UPDATED', unchangedColumns: ['notes'] } } } });

    // An update that sets the large value sends it: nothing is missing.
    await setup.source.query(`UPDATE contacts SET notes = 'short now' WHERE id = 1`);
    expect(await nextDetailed(changes)).toMatchObject({ operation: 'UPDATED', record: { name: 'Ann B.', notes: 'short now' }, unchangedColumns: [] });
  });

  it('sends the whole row with REPLICA IDENTITY FULL, and saving the mapping warns of nothing', async () => {
    const setup = await setUp('FULL');
    expect(await save(setup, MAPPING)).toEqual([]);
    const { changes } = await subscribed(setup);

    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (1, 'a', 'active', 'Ann', ${LARGE})`);
    expect(await nextDetailed(changes)).toMatchObject({ operation: 'CREATED', unchangedColumns: [] });
    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE id = 1`);
    const updated = await nextDetailed(changes);
    expect(updated).toMatchObject({ operation: 'UPDATED', record: { name: 'Ann B.' }, unchangedColumns: [] });
    expect(String(updated.record?.['notes'])).toHaveLength(LARGE_LENGTH);
  });

  it('keeps the value in the Apollo and urql examples, which merge an update into the row they hold', async () => {
    const setup = await setUp('DEFAULT');
    const saved = await gql(setup.server, setup.admin, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: MAPPING });
    expect(saved.errors).toBeUndefined();
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (1, 'a', 'active', 'Ann', ${LARGE})`);
    const token = await signHs256(READER);
    const apollo = createApolloClient({ httpUrl: setup.server.graphqlUrl, wsUrl: setup.server.wsUrl, token });
    onTestFinished(() => apollo.close());
    const urql = createUrqlClient({ httpUrl: setup.server.graphqlUrl, wsUrl: setup.server.wsUrl, token });
    onTestFinished(() => urql.close());
    const before = setup.server.stats().subscribers;
    let applied = 0;
    const apolloWatch = await watchWithApollo(apollo.client, null, () => void (applied += 1));
    onTestFinished(() => apolloWatch.stop());
    const urqlWatch = await watchWithUrql(urql.client, null, () => void (applied += 1));
    onTestFinished(() => urqlWatch.stop());
    await waitFor(() => setup.server.stats().subscribers === before + 2, { message: 'both examples subscribed' });
    const notesOf = (contacts: ReadonlyMap<string, Contact>) => String((contacts.get('1') as Record<string, unknown> | undefined)?.['notes']);
    expect(notesOf(apolloWatch.contacts)).toHaveLength(LARGE_LENGTH);

    await setup.source.query(`UPDATE contacts SET name = 'Ann B.', visits = 2 WHERE id = 1`);
    await waitFor(() => applied === 2, { timeoutMs: 15_000, message: 'both examples applied the update' });
    for (const contacts of [apolloWatch.contacts, urqlWatch.contacts]) {
      expect(contacts.get('1')).toMatchObject({ name: 'Ann B.', visits: 2, status: 'active' });
      expect(notesOf(contacts)).toHaveLength(LARGE_LENGTH);
    }
  });
});
