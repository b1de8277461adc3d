/**
 * `records(ids:)`: the rows of the entity keys a change's `id` names, looked up by key — what a
 * client reads when a change brought a row it does not hold without its TOASTed values. And
 * `records` over a source role that may not read the table: MISCONFIGURED naming the grant.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { isTributaryError } from '../../src/errors.ts';
import { parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { readModelRecords } from '../../src/pipeline/cdc/model-records.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';
import { CONTACTS_MAPPING, errorOf, gql, saveMappingOk, setUpCdc, type CdcSetup } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { signHs256, type TokenClaims } from '../helpers/tokens.ts';

const BY_IDS =
  'query($m: String!, $ids: [ID!], $f: JSON, $n: Int) { records(model: $m, ids: $ids, filter: $f, first: $n) { nodes { model id record } pageInfo { endCursor hasNextPage } pending { id } cursor readAt } }';

interface ByIdsPage {
  readonly nodes: { model: string; id: string; record: Record<string, unknown> }[];
  readonly pageInfo: { endCursor: string | null; hasNextPage: boolean };
  readonly pending: { id: string }[];
  readonly cursor: string;
}

const READER: TokenClaims = { tenant: 'a', permissions: ['crm.contacts.read'] };

async function byIds(setup: CdcSetup, variables: Record<string, unknown>, claims: TokenClaims = READER): Promise<ByIdsPage> {
  const body = await gql(setup.server, await signHs256(claims), BY_IDS, { m: 'contacts', ...variables });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['records'] as ByIdsPage;
}

describe('records(ids:): rows by entity key', () => {
  it("answers exactly the ids' rows that exist in the caller's tenant, are not soft-deleted and match the filter, in key order on one page", async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts ADD COLUMN deleted_at timestamptz');
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, softDeleteColumn: 'deleted_at' });
    await setup.source.query(
      `INSERT INTO contacts (id, tenant_id, status, name, deleted_at) VALUES
         (1, 'a', 'active', 'Ann', NULL), (2, 'a', 'lead', 'Bo', NULL), (3, 'b', 'active', 'Cy', NULL),
         (4, 'a', 'active', 'Di', now()), (5, 'a', 'active', 'Ed', NULL), (1500, 'a', 'active', 'Far', NULL)`,
    );
    // Rows before 1500 in key order: a read of it never pages up to it.
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) SELECT i, 'a', 'lead', 'n' || i FROM generate_series(6, 1499) AS i`);

    // 3 is tenant b's, 4 soft-deleted, 9999 missing, `abc` no integer and `1.0` not the key `1` spells.
    const page = await byIds(setup, { ids: ['1500', '5', '3', '4', '9999', '1', 'abc', '1.0', '5'] });
    expect(page.nodes.map((node) => node.id)).toEqual(['1', '5', '1500']);
    expect(page.nodes[0]).toMatchObject({ model: 'contacts', record: { id: 1, tenant_id: 'a', status: 'active', name: 'Ann', deleted_at: null } });
    expect(page.pageInfo).toEqual({ endCursor: null, hasNextPage: false });
    expect(page.pending).toEqual([]);
    expect(page.cursor).toMatch(/\S/);

    const active = await byIds(setup, { ids: ['1', '2', '5'], f: { status: 'eq.active' } });
    expect(active.nodes.map((node) => node.id)).toEqual(['1', '5']);
    expect((await byIds(setup, { ids: ['1', '2'] })).nodes.map((node) => node.id)).toEqual(['1', '2']);
    // Another tenant reads its own row of the same ids, and none of a's.
    const tenantB = await byIds(setup, { ids: ['1', '3'] }, { tenant: 'b', permissions: ['crm.contacts.read'] });
    expect(tenantB.nodes.map((node) => node.id)).toEqual(['3']);
    // Without the permission, nothing (as records).
    expect((await byIds(setup, { ids: ['1'] }, { tenant: 'a', permissions: [] })).nodes).toEqual([]);
    expect((await byIds(setup, { ids: [] })).nodes).toEqual([]);
  });

  it('reads a composite key by the id its changes carry (parts percent-encoded, joined by /)', async () => {
    const setup = await setUpCdc();
    await setup.source.query('CREATE TABLE lines (code text, n int, tenant_id text NOT NULL, qty int, PRIMARY KEY (n, code))');
    await saveMappingOk(setup, { name: 'lines', table: 'lines', events: ['insert'], topic: 'crm.line-events', module: 'crm', model: 'lines', tenantColumn: 'tenant_id' });
    await setup.source.query(`INSERT INTO lines VALUES ('x/y', 1, 'a', 10), ('x', 1, 'a', 20), ('x/y', 2, 'a', 30), ('z', 1, 'b', 40)`);
    const claims = { tenant: 'a', permissions: ['crm.lines.read'] };

    // The key's columns in table order (code, n), as a change's id names them.
    const page = await byIds(setup, { m: 'lines', ids: ['x%2Fy/1', 'x/1', 'z/1', 'x/y/1', 'x%2Fy/two'] }, claims);
    expect(page.nodes.map((node) => [node.id, node.record['qty']])).toEqual([
      ['x/1', 20],
      ['x%2Fy/1', 10],
    ]);
  });

  it('refuses more than 100 ids, and a page cursor with ids, with BAD_USER_INPUT', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256(READER);
    const ids = Array.from({ length: 101 }, (_, index) => String(index + 1));
    const tooMany = errorOf(await gql(setup.server, token, BY_IDS, { m: 'contacts', ids }));
    expect(tooMany?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'ids' });
    expect(tooMany?.message).toContain('at most 100 ids');
    expect((await byIds(setup, { ids: ids.slice(0, 100) })).nodes).toEqual([]);

    const withAfter = errorOf(await gql(setup.server, token, 'query($a: String) { records(model: "contacts", ids: ["1"], after: $a) { cursor } }', { a: 'x' }));
    expect(withAfter?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});

describe('records over a source role without SELECT on the table', () => {
  it('answers MISCONFIGURED naming the GRANT to run, not an internal error (SQLSTATE 42501)', async () => {
    const database = await createTestDatabase();
    const superuser = openTestPool(database.url);
    const role = uniqueName('reader');
    await superuser.query('CREATE TABLE contacts (id int PRIMARY KEY, tenant_id text NOT NULL, status text)');
    await superuser.query(`CREATE ROLE ${role} LOGIN REPLICATION`);
    onTestFinished(async () => {
      // After its connections closed (hooks run last first), before the database is dropped.
      await superuser.query(`DROP OWNED BY ${role}`);
      await superuser.query(`DROP ROLE ${role}`);
    });
    const url = new URL(database.url);
    url.username = role;
    const connections = createSourceConnections(url.toString());
    onTestFinished(() => connections.dispose());
    const read = (ids?: readonly string[]) =>
      readModelRecords(
        {
          source: { mapping: parseMapping(CONTACTS_MAPPING), connections, sourceId: 'src' },
          tenant: 'a',
          filter: parseModelFilter(undefined),
          first: 10,
          after: undefined,
          ...(ids && { ids }),
          streamHead: () => Promise.resolve('0'),
        },
        { statementTimeoutMs: 5000 },
      ).then(
        () => undefined,
        (error: unknown) => error,
      );

    for (const error of [await read(), await read(['1'])]) {
      expect(isTributaryError(error) && { code: error.code, message: error.message, details: error.details }).toEqual({
        code: 'MISCONFIGURED',
        message: `The role of the model's source database may not read public.contacts; an administrator must run: GRANT SELECT ON "public"."contacts" TO <the role of the source's URL>`,
        details: { reason: 'source-select-denied' },
      });
      expect((error as Error).cause).toMatchObject({ code: '42501' });
    }
    await superuser.query(`GRANT SELECT ON contacts TO ${role}`);
    expect(await read()).toBeUndefined();
  });
});
