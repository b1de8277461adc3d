/**
 * A live model against a real server reading a real Postgres (CDC) whose table has no REPLICA
 * IDENTITY FULL: a change that brings in a row the model does not hold — an update that moves it
 * into the filter, the CREATED of a key change — lacks the large (TOASTed) value the update left
 * unchanged (`unchangedColumns`). The model never holds the row without it: it reads the row whole
 * (`records` by its id) and holds that; a row deleted before the read answers never comes in.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type LiveModel, type ModelRecord } from '@tributary/client';
import { CONTACTS_MAPPING, gql, saveMappingOk, setUpCdc, type CdcSetup } from '../../../../test/helpers/cdc.ts';
import { signHs256 } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

/** About 12.8 KB of hex digits, which pglz cannot shrink under the 2 KB TOAST threshold: stored out of line. */
const LARGE = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) AS g)";
const LARGE_LENGTH = 12_800;
const READER = { tenant: 'a', permissions: ['crm.contacts.read', 'crm.others.read'] };

type Contact = ModelRecord & { readonly id: number; readonly status: string; readonly notes: string };

/** `contacts` with a `notes` column, REPLICA IDENTITY DEFAULT (updates leave unchanged TOAST values out). */
async function toastSetup(prepare: (setup: CdcSetup) => Promise<void>, events: readonly string[], env: Record<string, string> = {}): Promise<CdcSetup> {
  const setup = await setUpCdc({ env });
  await setup.source.query('ALTER TABLE contacts ADD COLUMN notes text');
  await setup.source.query('ALTER TABLE contacts REPLICA IDENTITY DEFAULT');
  await prepare(setup);
  await saveMappingOk(setup, { ...CONTACTS_MAPPING, events });
  return setup;
}

/** Every id a model ever showed, and each row it ever showed without its notes. */
function watch(model: LiveModel<Contact>): { readonly ids: Set<string>; readonly partial: string[] } {
  const seen = { ids: new Set<string>(), partial: [] as string[] };
  model.subscribe(() => {
    for (const [id, record] of model.getSnapshot().byId) {
      seen.ids.add(id);
      if (typeof record.notes !== 'string') seen.partial.push(JSON.stringify(record));
    }
  });
  return seen;
}

/**
 * A WebSocket (Node's) that notes the operations the client sends and the ends the server
 * answers, for a test to wait on a `records` read; it changes nothing on the way.
 */
function watchedWebSocket(sent: { id: string; payload: { query: string; variables?: { filter?: Record<string, unknown>; ids?: string[] } } }[], ended: Set<string>): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      this.addEventListener('message', (event: MessageEvent) => {
        const message = JSON.parse(String(event.data)) as { id?: string; type: string };
        if (message.id !== undefined && (message.type === 'complete' || message.type === 'error')) ended.add(message.id);
      });
    }

    override send(data: string): void {
      const message = JSON.parse(data) as { id?: string; type: string; payload?: (typeof sent)[number]['payload'] };
      if (message.type === 'subscribe' && message.id !== undefined && message.payload) sent.push({ id: message.id, payload: message.payload });
      super.send(data);
    }
  };
}

/**
 * Makes the server's `records` reads wait: it reads on the source's pool of two connections, and
 * both wait on a lock (of `others`, another model's table) until the returned function lets them
 * go (the test's CDC_RECORDS_STATEMENT_TIMEOUT_MS must outlast the steps between).
 */
async function holdRecordsReads(setup: CdcSetup, token: string): Promise<() => Promise<void>> {
  const locker = await setup.source.connect();
  onTestFinished(() => locker.release());
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE others IN ACCESS EXCLUSIVE MODE');
  const blocked = [1, 2].map(() => gql(setup.server, token, '{ records(model: "others") { cursor } }'));
  await waitFor(
    async () => (await setup.source.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]?.n === 2,
    { timeoutMs: 10_000, message: 'both pool connections wait on the lock' },
  );
  return async () => {
    await locker.query('ROLLBACK');
    await Promise.all(blocked);
  };
}

const OTHERS_MAPPING = { name: 'others', table: 'others', events: ['insert'], topic: 'crm.other-events', module: 'crm', model: 'others', tenantColumn: 'tenant_id' };

describe('a live model and rows that come without their TOASTed values', () => {
  it('reads whole a row an update not touching the large value moves into its filter', async () => {
    const setup = await toastSetup(async ({ source }) => {
      await source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (1, 'a', 'lead', 'Ann', ${LARGE}), (2, 'a', 'active', 'Bo', ${LARGE})`);
    }, ['insert', 'update']);
    const token = await signHs256(READER);
    const client = createClient({ url: setup.server.wsUrl, getToken: () => token });
    onTestFinished(() => client.close());
    const updated: string[] = [];
    const active = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active' }, onUpdated: (record) => void updated.push(`${record.id} ${record.notes.length}`) });
    const seen = watch(active);
    await waitFor(() => active.isLive && active.records.length === 1, { timeoutMs: 20_000, message: 'live' });

    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE id = 1`);
    await waitFor(() => active.getSnapshot().byId.has('1'), { timeoutMs: 15_000, message: 'row 1 in the filtered model' });
    expect(active.getSnapshot().byId.get('1')).toMatchObject({ id: 1, status: 'active', name: 'Ann' });
    expect(active.getSnapshot().byId.get('1')?.notes).toHaveLength(LARGE_LENGTH);
    expect(seen.partial).toEqual([]);
    // The update that brought it in fires onUpdated, with the row whole.
    expect(updated).toEqual([`1 ${LARGE_LENGTH}`]);
  });

  it('reads whole the row a key change creates, and drops the old key', async () => {
    const setup = await toastSetup(async ({ source }) => {
      await source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (10, 'a', 'active', 'Cy', ${LARGE})`);
    }, ['insert', 'update']);
    const token = await signHs256(READER);
    const client = createClient({ url: setup.server.wsUrl, getToken: () => token });
    onTestFinished(() => client.close());
    const all = client.liveModel<Contact>('contacts');
    const active = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active' } });
    const seen = [watch(all), watch(active)];
    await waitFor(() => all.isLive && active.isLive && all.records.length === 1 && active.records.length === 1, { timeoutMs: 20_000, message: 'live' });

    // Sent as DELETED 10, then CREATED 11 without notes (`unchangedColumns: ["notes"]`).
    await setup.source.query('UPDATE contacts SET id = 11 WHERE id = 10');
    for (const model of [all, active]) {
      await waitFor(() => model.getSnapshot().byId.has('11'), { timeoutMs: 15_000, message: 'row 11' });
      expect([...model.getSnapshot().byId.keys()]).toEqual(['11']);
      expect(model.records[0]).toMatchObject({ id: 11, status: 'active', name: 'Cy' });
      expect(model.records[0]?.notes).toHaveLength(LARGE_LENGTH);
    }
    expect(seen.flatMap((each) => each.partial)).toEqual([]);
  });

  it('does not bring in a row deleted before its read answers', async () => {
    // The tenant in the key: a delete without REPLICA IDENTITY FULL still names its tenant (routed).
    // The entity key is `{id}/{tenant_id}`.
    const setup = await toastSetup(async ({ source }) => {
      await source.query('ALTER TABLE contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (tenant_id, id)');
      await source.query('CREATE TABLE others (id int PRIMARY KEY, tenant_id text NOT NULL)');
      await source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (1, 'a', 'lead', 'Ann', ${LARGE}), (2, 'a', 'active', 'Bo', ${LARGE})`);
    }, ['insert', 'update', 'delete'], { CDC_RECORDS_STATEMENT_TIMEOUT_MS: '60000' });
    await saveMappingOk(setup, OTHERS_MAPPING);
    const token = await signHs256(READER);
    const sent: Parameters<typeof watchedWebSocket>[0] = [];
    const ended = new Set<string>();
    const client = createClient({ url: setup.server.wsUrl, getToken: () => token, webSocketImpl: watchedWebSocket(sent, ended) });
    onTestFinished(() => client.close());
    const active = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active' } });
    const seen = watch(active);
    await waitFor(() => active.isLive && active.records.length === 1, { timeoutMs: 20_000, message: 'live' });

    const unblock = await holdRecordsReads(setup, token);

    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE id = 1`);
    const keyReads = () => sent.filter((operation) => operation.payload.query.includes('records(') && operation.payload.variables?.ids !== undefined);
    await waitFor(() => keyReads().length === 1, { timeoutMs: 15_000, message: 'the read of row 1/a is sent' });
    // Composite key (tenant_id, id): read by the change's id, under the model's filter.
    expect(keyReads()[0]?.payload.variables).toMatchObject({ ids: ['1/a'], filter: { status: 'eq.active' } });
    const read = keyReads()[0]!.id;
    expect(ended.has(read)).toBe(false);

    await setup.source.query(`DELETE FROM contacts WHERE id = 1`);
    // A change after the delete: once it is held, the model has applied the DELETED too.
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (3, 'a', 'active', 'Cy', 'short')`);
    await waitFor(() => active.getSnapshot().byId.has('3/a'), { timeoutMs: 15_000, message: 'row 3/a' });
    expect(seen.ids.has('1/a')).toBe(false);
    expect(ended.has(read)).toBe(false);

    await unblock();
    await waitFor(() => ended.has(read), { timeoutMs: 15_000, message: 'the read answered' });
    // Then one more change: the read's answer was handled before it.
    await setup.source.query(`UPDATE contacts SET name = 'Cy 2' WHERE id = 3`);
    await waitFor(() => active.getSnapshot().byId.get('3/a')?.name === 'Cy 2', { timeoutMs: 15_000, message: 'the update of 3/a' });
    expect([...active.getSnapshot().byId.keys()]).toEqual(['2/a', '3/a']);
    expect(keyReads()).toHaveLength(1);
    expect(seen.ids.has('1/a')).toBe(false);
    expect(seen.partial).toEqual([]);
  });

  it('reads the row by its key even where another column spelled the key when the change came', async () => {
    // `name` holds each row's id: the key the SDK once guessed from the record named it too, and
    // its read missed the row once `name` changed before the read ran.
    const setup = await toastSetup(async ({ source }) => {
      await source.query('CREATE TABLE others (id int PRIMARY KEY, tenant_id text NOT NULL)');
      await source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (1, 'a', 'lead', '1', ${LARGE}), (2, 'a', 'active', '2', ${LARGE})`);
    }, ['insert', 'update'], { CDC_RECORDS_STATEMENT_TIMEOUT_MS: '60000' });
    await saveMappingOk(setup, OTHERS_MAPPING);
    const token = await signHs256(READER);
    const sent: Parameters<typeof watchedWebSocket>[0] = [];
    const ended = new Set<string>();
    const client = createClient({ url: setup.server.wsUrl, getToken: () => token, webSocketImpl: watchedWebSocket(sent, ended) });
    onTestFinished(() => client.close());
    const active = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active' } });
    const seen = watch(active);
    await waitFor(() => active.isLive && active.records.length === 1, { timeoutMs: 20_000, message: 'live' });
    const listed = sent.filter((operation) => operation.payload.query.includes('records(')).length;
    const reads = () => sent.filter((operation) => operation.payload.query.includes('records(')).slice(listed);

    const unblock = await holdRecordsReads(setup, token);
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE id = 1`);
    await waitFor(() => reads().length === 1, { timeoutMs: 15_000, message: 'the read of row 1 is sent' });
    expect(reads()[0]?.payload.variables).toMatchObject({ ids: ['1'], filter: { status: 'eq.active' } });
    // While the read waits: `name` no longer spells the key. A change after it: once that one is
    // held, the model has taken the rename too (on top of what the read will find).
    await setup.source.query(`UPDATE contacts SET name = 'Ann' WHERE id = 1`);
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name, notes) VALUES (3, 'a', 'active', '3', 'short')`);
    await waitFor(() => active.getSnapshot().byId.has('3'), { timeoutMs: 15_000, message: 'row 3' });

    await unblock();
    await waitFor(() => ended.has(reads()[0]!.id), { timeoutMs: 15_000, message: 'the read answered' });
    await setup.source.query(`UPDATE contacts SET name = 'Cy' WHERE id = 3`);
    await waitFor(() => active.getSnapshot().byId.get('3')?.name === 'Cy', { timeoutMs: 15_000, message: 'the update of 3' });
    expect([...active.getSnapshot().byId.keys()].sort()).toEqual(['1', '2', '3']);
    expect(active.getSnapshot().byId.get('1')).toMatchObject({ id: 1, status: 'active', name: 'Ann' });
    expect(active.getSnapshot().byId.get('1')?.notes).toHaveLength(LARGE_LENGTH);
    expect(seen.partial).toEqual([]);
  });
});
