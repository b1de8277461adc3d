/**
 * Admin arguments that reach a Postgres text or jsonb column are checked first: a NUL character
 * (valid in GraphQL and JSON strings, refused by Postgres) used to come back as
 * INTERNAL_SERVER_ERROR, and acknowledgeAlert echoed any id, however long, in its NOT_FOUND.
 * Now each is BAD_USER_INPUT naming the argument, on both platform databases.
 */
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, postGraphQL, startTestServer } from '../helpers/tributary.ts';

const ACKNOWLEDGE = 'mutation($id: ID!) { acknowledgeAlert(id: $id) { id } }';
const DELETE_MAPPING = 'mutation($n: String!) { deleteCdcMapping(name: $n) }';
const SAVE_MAPPING = 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }';
const SET_CDC_SOURCE = 'mutation($u: String!) { setCdcSource(databaseUrl: $u) { host } }';
const SET_OUTBOX = 'mutation($u: String!) { setOutboxSource(databaseUrl: $u, createTable: true) { table } }';
const MAPPING = { name: 'contacts', table: 'contacts', events: ['insert'], topic: 'crm.contacts', module: 'crm', model: 'contacts' };

describe.each([
  ['Postgres', false],
  ['the embedded database', true],
])('admin arguments with a NUL (%s)', (_name, embedded) => {
  it('are refused with BAD_USER_INPUT naming the argument; well-formed unknown ones answer as before', { timeout: 60_000 }, async () => {
    const logs = captureLogs();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'error' }, { embedded, logDestination: logs });
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    const source = await createTestDatabase();
    const ask = async (query: string, variables: Record<string, unknown>) => {
      const { body } = await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${admin}` });
      return { data: body.data, error: body.errors?.[0] && { message: body.errors[0].message, ...body.errors[0].extensions } };
    };
    const refused = (field: string, extra: Record<string, unknown> = {}) => ({ data: null, error: expect.objectContaining({ code: 'BAD_USER_INPUT', field, ...extra }) as unknown });

    expect.soft(await ask(ACKNOWLEDGE, { id: 'alrt_x\u0000' })).toEqual(refused('id'));
    const long = await ask(ACKNOWLEDGE, { id: 'x'.repeat(100_000) });
    expect.soft(long).toEqual(refused('id'));
    expect.soft(long.error?.message.length).toBeLessThan(100);
    expect.soft(await ask(ACKNOWLEDGE, { id: `alrt_${'x'.repeat(22)}` })).toEqual({ data: null, error: expect.objectContaining({ code: 'NOT_FOUND', field: 'id' }) as unknown });

    expect.soft(await ask(DELETE_MAPPING, { n: 'contacts\u0000' })).toEqual(refused('name'));
    expect.soft(await ask(DELETE_MAPPING, { n: 'contacts' })).toEqual({ data: { deleteCdcMapping: false }, error: undefined });
    expect.soft(await ask(SAVE_MAPPING, { m: { ...MAPPING, when: { eq: ['$row.status', 'vip\u0000'] } } })).toEqual(refused('mapping', { path: 'when.eq[1]' }));

    // Each would connect: the NUL is in the fragment, which neither driver reads.
    expect.soft(await ask(SET_CDC_SOURCE, { u: `${source.url}#\u0000` })).toEqual(refused('databaseUrl'));
    expect.soft(await ask(SET_OUTBOX, { u: `${source.url}#\u0000` })).toEqual(refused('databaseUrl'));

    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});
