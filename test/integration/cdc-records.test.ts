import { describe, expect, it } from 'vitest';
import {
  CONTACTS_MAPPING,
  deniedChanges,
  gql,
  metricSample,
  saveMappingOk,
  setUpCdc,
  socketFor,
  type CdcSetup,
  type ModelChange,
} from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256, type TokenClaims } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import type { RawSocket } from '../helpers/ws-client.ts';

const RECORDS =
  'query($m: String!, $f: JSON, $n: Int, $a: String) { records(model: $m, filter: $f, first: $n, after: $a) { nodes { model id record } pageInfo { endCursor hasNextPage } cursor } }';

interface RecordNode {
  readonly model: string;
  readonly id: string;
  readonly record: Record<string, unknown>;
}

interface RecordsPage {
  readonly nodes: RecordNode[];
  readonly pageInfo: { endCursor: string | null; hasNextPage: boolean };
  readonly cursor: string;
}

const READER: TokenClaims = { tenant: 'a', permissions: ['crm.contacts.read'] };

async function recordsPage(setup: CdcSetup, claims: TokenClaims, variables: Record<string, unknown>): Promise<RecordsPage> {
  const body = await gql(setup.server, await signHs256(claims), RECORDS, { m: 'contacts', ...variables });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['records'] as RecordsPage;
}

/** Every page of a listing: the nodes, and the cursor (checked to be the same on every page). */
async function allRecords(setup: CdcSetup, claims: TokenClaims, variables: Record<string, unknown> = {}): Promise<{ nodes: RecordNode[]; cursor: string; pages: number }> {
  const nodes: RecordNode[] = [];
  let page = await recordsPage(setup, claims, variables);
  const cursor = page.cursor;
  let pages = 1;
  nodes.push(...page.nodes);
  while (page.pageInfo.hasNextPage) {
    page = await recordsPage(setup, claims, { ...variables, a: page.pageInfo.endCursor });
    expect(page.cursor).toBe(cursor);
    nodes.push(...page.nodes);
    pages += 1;
  }
  return { nodes, cursor, pages };
}

describe('records: a model snapshot', () => {
  it('pages through the tenant’s live rows by key with the filter of changes, and hides everything without the permission', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts ADD COLUMN deleted_at timestamptz');
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, softDeleteColumn: 'deleted_at' });
    await setup.source.query(
      `INSERT INTO contacts (tenant_id, status, name) SELECT 'a', CASE WHEN i % 3 = 0 THEN 'active' ELSE 'lead' END, 'c' || i FROM generate_series(1, 250) AS i`,
    );
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'b', 'active', 'b' || i FROM generate_series(1, 5) AS i`);
    await setup.source.query(`UPDATE contacts SET deleted_at = now() WHERE tenant_id = 'a' AND id % 10 = 0`);
    const { rows: live } = await setup.source.query<{ id: number; status: string }>(
      `SELECT id, status FROM contacts WHERE tenant_id = 'a' AND deleted_at IS NULL ORDER BY id`,
    );

    const first = await recordsPage(setup, READER, { n: 100 });
    expect(first.nodes).toHaveLength(100);
    expect(first.pageInfo.hasNextPage).toBe(true);
    expect(first.nodes[0]).toMatchObject({ model: 'contacts', id: String(live[0]!.id), record: { id: live[0]!.id, tenant_id: 'a', deleted_at: null } });

    const all = await allRecords(setup, READER, { n: 100 });
    expect(all.pages).toBe(3);
    expect(all.nodes.map((node) => Number(node.id))).toEqual(live.map((row) => row.id));

    const active = await allRecords(setup, READER, { f: { status: 'eq.active' }, n: 7 });
    expect(active.nodes.map((node) => Number(node.id))).toEqual(live.filter((row) => row.status === 'active').map((row) => row.id));

    const otherTenant = await allRecords(setup, { tenant: 'b', permissions: ['crm.contacts.read'] });
    expect(otherTenant.nodes.map((node) => node.record['name'])).toEqual(['b1', 'b2', 'b3', 'b4', 'b5']);

    const deniedBefore = await metricSample(setup.server, 'tributary_subscriptions_denied_total', { field: 'records' });
    for (const claims of [{ tenant: 'a', permissions: [] }, { tenant: 'a', permissions: ['crm.deals.read'] }]) {
      const page = await recordsPage(setup, claims, {});
      expect(page.nodes).toEqual([]);
      expect(page.pageInfo).toEqual({ endCursor: null, hasNextPage: false });
    }
    // A model nobody maps looks the same.
    expect((await recordsPage(setup, READER, { m: 'nothing' })).nodes).toEqual([]);
    expect(await metricSample(setup.server, 'tributary_subscriptions_denied_total', { field: 'records' })).toBe(deniedBefore + 3);

    const token = await signHs256(READER);
    const tooMany = await gql(setup.server, token, RECORDS, { m: 'contacts', n: 1001 });
    expect(tooMany.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    const badAfter = await gql(setup.server, token, RECORDS, { m: 'contacts', a: 'nonsense' });
    expect(badAfter.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    const badFilter = await gql(setup.server, token, RECORDS, { m: 'contacts', f: { status: 'like.x' } });
    expect(badFilter.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter' });
  });

  it.each(MODES)('joins changes at its cursor while writers race the snapshot (%s log): no change lost, no row going back to an older version', async (mode) => {
    const setup = await setUpCdc({ env: modeEnv(mode) });
    await setup.source.query('ALTER TABLE contacts ADD COLUMN version int NOT NULL DEFAULT 0');
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'a', 'lead', 'c' || i FROM generate_series(1, 120) AS i`);
    const writerPool = setup.source;

    const ITERATIONS = 6;
    const WRITERS = 3;
    for (let iteration = 0; iteration < ITERATIONS; iteration += 1) {
      // Writers bump versions of a hot set of rows spread over every page (and add a row now and
      // then) while the listing is read and the stream joined.
      const stop = new AbortController();
      let writes = 0;
      const writers = Array.from({ length: WRITERS }, async (_unused, writer) => {
        for (let n = 0; !stop.signal.aborted; n += 1) {
          if (n % 25 === 24) await writerPool.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', $1)`, [`w${writer}-${iteration}-${n}`]);
          else await writerPool.query('UPDATE contacts SET version = version + 1 WHERE id = $1', [1 + ((n * 7 + writer * 13) % 40) * 3]);
          writes += 1;
        }
      });
      await waitFor(() => writes > 20, { message: 'the writers write' });

      const listing = await allRecords(setup, READER, { n: 50 });
      // Later pages leave out rows changed since the first page's snapshot: two pages at least.
      expect(listing.pages).toBeGreaterThanOrEqual(2);
      const state = new Map(listing.nodes.map((node) => [node.id, Number(node.record['version'])]));
      const client = await socketFor(setup, READER);
      // With the event ids: a change the reader had not confirmed comes again after it restarts
      // (at least once, README), and the client applies it once, as the README's steps say.
      client.send({ id: 'c', type: 'subscribe', payload: { query: CHANGES_WITH_IDS, variables: { m: 'contacts', a: listing.cursor } } });
      const applied = applyChanges(client, state);
      await waitFor(() => writes > 200 * (iteration + 1) || applied.regressions.length > 0, { timeoutMs: 20_000, message: 'the writers write on' });
      stop.abort();
      await Promise.all(writers);

      const { rows } = await setup.source.query<{ id: number; version: number }>(`SELECT id, version FROM contacts WHERE tenant_id = 'a' ORDER BY id`);
      const expected = new Map(rows.map((row) => [String(row.id), row.version]));
      await waitFor(() => applied.regressions.length > 0 || sameState(state, expected), { timeoutMs: 20_000, message: `iteration ${iteration}: the client converges to the table` });
      expect(applied.regressions, `iteration ${iteration}`).toEqual([]);
      expect(state).toEqual(expected);
      applied.stop();
      client.socket.close();
    }
    expect(await deniedChanges(setup.server)).toBe(0);
  });

  it("refuses another model's page cursor with BAD_USER_INPUT (field: after), whatever its key's shape", async () => {
    const setup = await setUpCdc();
    await setup.source.query(`CREATE TABLE memberships (tenant_id text NOT NULL, org int, person int, PRIMARY KEY (org, person))`);
    await setup.source.query(`ALTER TABLE memberships REPLICA IDENTITY FULL`);
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, name: 'memberships', table: 'memberships', topic: 'crm.membership-events', model: 'memberships' });
    await setup.source.query(`INSERT INTO contacts (tenant_id, name) SELECT 'a', 'c' || i FROM generate_series(1, 3) AS i`);
    await setup.source.query(`INSERT INTO memberships (tenant_id, org, person) SELECT 'a', 1, i FROM generate_series(1, 3) AS i`);
    const claims = { tenant: 'a', permissions: ['crm.contacts.read', 'crm.memberships.read'] };
    const contacts = await recordsPage(setup, claims, { n: 1 });
    const memberships = await recordsPage(setup, claims, { m: 'memberships', n: 1 });
    for (const [model, after] of [
      ['memberships', contacts.pageInfo.endCursor],
      ['contacts', memberships.pageInfo.endCursor],
    ] as const) {
      const body = await gql(setup.server, await signHs256(claims), RECORDS, { m: model, n: 1, a: after });
      expect(body.errors?.[0]?.extensions, model).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    }
    // Its own model's cursor still pages on.
    expect((await recordsPage(setup, claims, { m: 'memberships', n: 1, a: memberships.pageInfo.endCursor })).nodes).toHaveLength(1);
  });
});

/** Applies every change of subscription `c` to `state`, noting any that would move a row back to an older version. */
/** `changes` with each change's event id, to skip redelivered copies. */
const CHANGES_WITH_IDS =
  'subscription($m: String!, $a: String) { changes(model: $m, after: $a) { operation model id eventId record cursor lastUpdatedAt } }';

function applyChanges(client: RawSocket, state: Map<string, number>): { readonly regressions: string[]; stop(): void } {
  const regressions: string[] = [];
  /** Event ids applied: a redelivered copy is skipped (README, "Model snapshots", step 2). */
  const applied = new Set<string>();
  let stopped = false;
  void (async () => {
    while (!stopped) {
      let message;
      try {
        message = await client.nextMessage();
      } catch {
        return;
      }
      if (message.type !== 'next') {
        regressions.push(`unexpected ${JSON.stringify(message)}`);
        continue;
      }
      const change = (message.payload as { data: { changes: ModelChange & { eventId: string } } }).data.changes;
      if (applied.has(change.eventId)) continue;
      applied.add(change.eventId);
      const version = Number(change.record?.['version']);
      const held = state.get(change.id);
      if (held !== undefined && version < held) regressions.push(`${change.id}: ${held} → ${version}`);
      state.set(change.id, version);
    }
  })();
  return {
    regressions,
    stop: () => {
      stopped = true;
    },
  };
}

function sameState(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, version] of a) if (b.get(id) !== version) return false;
  return true;
}
