/**
 * liveModel against a real server reading a real Postgres (CDC): the snapshot, then the changes,
 * with writers racing the snapshot; sharing per model and filter; the refill after
 * RESYNC_REQUIRED.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type LiveModel, type ModelRecord, type TributaryClient } from '@tributary/client';
import { CONTACTS_MAPPING, gql, saveMappingOk, setUpCdc, type CdcSetup } from '../../../../test/helpers/cdc.ts';
import { freePort } from '../../../../test/helpers/free-port.ts';
import { createTestDatabase, openTestPool } from '../../../../test/helpers/services.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { startTestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

type Contact = ModelRecord & { readonly id: number; readonly name: string; readonly status: string; readonly version: number };

const READER: TokenClaims = { tenant: 'a', permissions: ['crm.contacts.read'] };

function connect(url: string, options: { pageSize?: number; maxRecords?: number } = {}): TributaryClient {
  const client = createClient({ url, getToken: () => signHs256(READER), backoff: { initialMs: 50, maxMs: 200 }, ...options });
  onTestFinished(() => client.close());
  return client;
}

async function contactsSetup(): Promise<CdcSetup> {
  const setup = await setUpCdc();
  await setup.source.query('ALTER TABLE contacts ADD COLUMN version int NOT NULL DEFAULT 0');
  await saveMappingOk(setup, CONTACTS_MAPPING);
  return setup;
}

/** The table's rows of tenant a as `id → version`. */
async function tableState(setup: CdcSetup, where = "tenant_id = 'a'"): Promise<Map<string, number>> {
  const { rows } = await setup.source.query<{ id: number; version: number }>(`SELECT id, version FROM contacts WHERE ${where} ORDER BY id`);
  return new Map(rows.map((row) => [String(row.id), row.version]));
}

function modelState(model: LiveModel<Contact>): Map<string, number> {
  return new Map([...model.getSnapshot().byId].map(([id, record]) => [id, record.version]));
}

function sameState(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  return a.size === b.size && [...a].every(([id, version]) => b.get(id) === version);
}

describe('liveModel', () => {
  it('shows the snapshot, then inserts, updates and deletes — each callback once — with writers racing the snapshot: nothing lost, no row going back', async () => {
    const setup = await contactsSetup();
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'a', 'lead', 'c' || i FROM generate_series(1, 150) AS i`);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('b', 'lead', 'other tenant')`);

    // Writers bump versions all over the table while the snapshot (three pages) is read and the stream joined.
    const stop = new AbortController();
    let writes = 0;
    const writers = Array.from({ length: 2 }, async (_unused, writer) => {
      for (let n = 0; !stop.signal.aborted; n += 1) {
        await setup.source.query('UPDATE contacts SET version = version + 1 WHERE id = $1', [1 + ((n * 7 + writer * 13) % 50) * 3]);
        writes += 1;
      }
    });
    await waitFor(() => writes > 10, { message: 'the writers write' });

    const client = connect(setup.server.wsUrl, { pageSize: 50 });
    const created: string[] = [];
    const updates = new Map<string, number>();
    const deleted: string[] = [];
    const regressions: string[] = [];
    const contacts = client.liveModel<Contact>('contacts', {
      onCreated: (record) => void created.push(record.name),
      onUpdated: (_record, change) => void updates.set(change.eventId, (updates.get(change.eventId) ?? 0) + 1),
      onDeleted: (record) => void deleted.push(record.name),
    });
    let previous = contacts.getSnapshot();
    contacts.subscribe(() => {
      const next = contacts.getSnapshot();
      for (const [id, record] of next.byId) {
        const before = previous.byId.get(id);
        if (before && record.version < before.version) regressions.push(`${id}: ${before.version} → ${record.version}`);
      }
      previous = next;
    });
    await waitFor(() => contacts.isLive, { timeoutMs: 20_000, message: 'live' });
    await waitFor(() => writes > 200, { timeoutMs: 20_000, message: 'the writers write on' });
    stop.abort();
    await Promise.all(writers);
    const afterWriters = await tableState(setup);
    await waitFor(() => sameState(modelState(contacts), afterWriters), { timeoutMs: 20_000, message: 'the model converges to the table' });
    expect(regressions).toEqual([]);
    expect(contacts.records.every((record) => record.tenant_id === 'a')).toBe(true);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'new one')`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'c1'`);
    const expected = await tableState(setup);
    await waitFor(() => sameState(modelState(contacts), expected), { timeoutMs: 20_000, message: 'the insert and the delete' });
    expect(created).toEqual(['new one']);
    expect(deleted).toEqual(['c1']);
    expect(updates.size).toBeGreaterThan(0);
    expect([...updates.values()].every((count) => count === 1)).toBe(true);
    expect(contacts.status).toBe('live');
    expect(contacts.lastUpdatedAt).not.toBeNull();
  });

  it('shares one server subscription between handles of the same model and filter, and stops it with the last close', async () => {
    const setup = await contactsSetup();
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'ann'), ('a', 'lead', 'bo')`);
    const client = connect(setup.server.wsUrl);
    const base = setup.server.stats().subscribers;
    const first = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active', name: 'neq.zed' } });
    // An equal filter with its keys in another order shares the subscription.
    const second = client.liveModel<Contact>('contacts', { filter: { name: 'neq.zed', status: 'eq.active' } });
    const all = client.liveModel<Contact>('contacts');
    expect(second.getSnapshot()).toBe(first.getSnapshot());
    await waitFor(() => first.isLive && all.isLive, { timeoutMs: 20_000, message: 'live' });
    await waitFor(() => setup.server.stats().subscribers === base + 2, { message: 'two server subscriptions' });
    expect(second.getSnapshot()).toBe(first.getSnapshot());
    expect(first.records.map((record) => record.name)).toEqual(['ann']);
    expect(all.records.map((record) => record.name)).toEqual(['ann', 'bo']);

    first.close();
    first.close();
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'cy')`);
    await waitFor(() => second.records.length === 2, { message: 'the remaining handle still gets changes' });
    second.close();
    await waitFor(() => setup.server.stats().subscribers === base + 1, { message: 'the shared subscription stopped' });
    expect(second.status).toBe('closed');
    expect(all.isLive).toBe(true);
  });

  it('stops with the maxRecords error when rows created after the snapshot would take it past the limit', async () => {
    const setup = await contactsSetup();
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'ann'), ('a', 'lead', 'bo')`);
    const client = connect(setup.server.wsUrl, { maxRecords: 2 });
    const base = setup.server.stats().subscribers;
    const contacts = client.liveModel<Contact>('contacts');
    await waitFor(() => contacts.isLive, { timeoutMs: 20_000, message: 'live' });
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'cy')`);
    await waitFor(() => contacts.records.length > 2 || contacts.status === 'error', { timeoutMs: 15_000, message: 'the insert arrives' });
    expect({ status: contacts.status, names: names(contacts) }).toEqual({ status: 'error', names: 'ann,bo' });
    expect(contacts.error?.message).toMatch(/more than 2 records \(maxRecords\)/);
    await waitFor(() => setup.server.stats().subscribers === base, { message: 'the server subscription stopped' });
  });

  it('reads the snapshot again on RESYNC_REQUIRED (the server restarted and its log is gone) and shows what changed meanwhile', async () => {
    // Servers on one platform database (the CDC source and mapping survive) and one port, one after
    // the other; their logs are in memory, so the second starts a new history.
    const platform = await createTestDatabase();
    const source = await createTestDatabase();
    const sourcePool = openTestPool(source.url);
    await sourcePool.query('CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text, version int NOT NULL DEFAULT 0)');
    await sourcePool.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
    await sourcePool.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'ann'), ('a', 'lead', 'bo')`);
    const port = await freePort();
    const env = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', PORT: String(port), DATABASE_URL: platform.url };
    let server = await startTestServer(env, { autoDispose: false });
    onTestFinished(() => server.dispose());
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    expect((await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: source.url })).errors).toBeUndefined();
    expect((await gql(server, admin, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: CONTACTS_MAPPING })).errors).toBeUndefined();

    const client = connect(`ws://127.0.0.1:${port}/graphql`);
    const contacts = client.liveModel<Contact>('contacts');
    const statuses: string[] = [];
    contacts.subscribe(() => {
      if (statuses.at(-1) !== contacts.status) statuses.push(contacts.status);
    });
    await waitFor(() => contacts.isLive, { timeoutMs: 20_000, message: 'live' });
    expect(names(contacts)).toBe('ann,bo');
    // A change the client receives: from now on it holds a cursor in the first server's history.
    await waitFor(
      async () => ((await gql(server, admin, '{ cdcSource { status { state } } }')).data?.['cdcSource'] as { status: { state: string } | null } | null)?.status?.state === 'streaming',
      { message: 'the CDC reader streams' },
    );
    await sourcePool.query(`UPDATE contacts SET version = version + 1 WHERE name = 'ann'`);
    await waitFor(() => contacts.records[0]?.version === 1, { timeoutMs: 20_000, message: 'a change arrives' });

    await server.dispose();
    await sourcePool.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'cy')`);
    await sourcePool.query(`DELETE FROM contacts WHERE name = 'bo'`);
    server = await startTestServer(env, { autoDispose: false });
    await waitFor(() => contacts.isLive && names(contacts) === 'ann,cy', { timeoutMs: 30_000, message: 'refilled' });
    expect(statuses).toContain('resyncing');
    // The slot kept its place: a change made now reaches the client once the new server's reader streams.
    await sourcePool.query(`UPDATE contacts SET name = 'cy 2' WHERE name = 'cy'`);
    await waitFor(() => names(contacts) === 'ann,cy 2', { timeoutMs: 20_000, message: 'live after the refill' });
  });
});

function names(model: LiveModel<Contact>): string {
  return model.records.map((record) => record.name).join();
}
