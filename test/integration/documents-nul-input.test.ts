/**
 * Document data and patches Postgres cannot store — a NUL character (U+0000) or half of a
 * surrogate pair in a key or a string: valid JSON and GraphQL, refused by jsonb — are refused at
 * the edge with BAD_USER_INPUT naming the argument, in every storage mode. Before, they passed:
 * an internal error without Redis; with Redis in sync durability an UNAVAILABLE promising a write
 * that could never happen, and every later write of the document failing; in async durability an
 * acknowledged change never written to Postgres.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { captureLogs, postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

async function gql(server: TestServer, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables })).body;
}

const CREATE = 'mutation($id: ID!, $d: JSON!) { createDocument(service: "board", id: $id, data: $d) { revision data } }';
const REPLACE = 'mutation($d: JSON!) { replaceDocument(service: "board", id: "b1", data: $d) { revision data } }';
const MERGE = 'mutation($p: JSON!) { mergeDocument(service: "board", id: "b1", patch: $p) { revision data } }';
const READ = 'query($id: ID!) { document(service: "board", id: $id) { revision data } }';

const MODES = [
  ['without Redis', {}],
  ['with Redis, sync durability', { SYNC_DURABILITY: 'sync' }],
  ['with Redis, async durability', { SYNC_DURABILITY: 'async' }],
] as const;

describe.each(MODES)('document writes the database cannot store (%s)', (_mode, durability) => {
  it('are refused with BAD_USER_INPUT naming the argument and the place, and the document goes on as before', async () => {
    const database = await createTestDatabase();
    const prefix = uniquePrefix();
    const cached = 'SYNC_DURABILITY' in durability;
    const logs = captureLogs();
    const server = await startTestServer(
      { DATABASE_URL: database.url, LOG_LEVEL: 'warn', ...(cached && { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, ...durability }) },
      { logDestination: logs },
    );
    const pool = openTestPool(database.url);
    expect((await gql(server, CREATE, { id: 'b1', d: { x: 1 } })).data).toEqual({ createDocument: { revision: 1, data: { x: 1 } } });

    const refusals = [
      [CREATE, { id: 'b2', d: { title: 'a\u0000b' } }, { field: 'data', path: '/title' }],
      [MERGE, { p: { nested: { list: [1, 'ok', '\u0000'] } } }, { field: 'patch', path: '/nested/list/2' }],
      [MERGE, { p: { ['key\u0000']: true } }, { field: 'patch', path: '/key\\u0000' }],
      [REPLACE, { d: { emoji: 'half \ud83d of a pair' } }, { field: 'data', path: '/emoji' }],
      [REPLACE, { d: { ['\udc00']: 1 } }, { field: 'data', path: '/\\udc00' }],
    ] as const;
    for (const [query, variables, where] of refusals) {
      const body = await gql(server, query, variables);
      expect(body.data).toBeNull();
      expect(body.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', ...where });
    }

    // Nothing was written: the document is as it was, the refused one does not exist, and the next write goes through.
    expect((await gql(server, READ, { id: 'b1' })).data).toEqual({ document: { revision: 1, data: { x: 1 } } });
    expect((await gql(server, READ, { id: 'b2' })).data).toEqual({ document: null });
    expect((await gql(server, MERGE, { p: { y: 'a whole 😀 pair' } })).data).toEqual({ mergeDocument: { revision: 2, data: { x: 1, y: 'a whole 😀 pair' } } });
    expect((await gql(server, CREATE, { id: 'b2', d: { title: 'ab' } })).data).toEqual({ createDocument: { revision: 1, data: { title: 'ab' } } });
    if (cached) {
      const redis = new Redis(testRedisUrl());
      onTestFinished(async () => void (await redis.quit()));
      await waitFor(async () => (await redis.zcard(`${prefix}doc:dirty`)) === 0, { message: 'every change in Postgres' });
    }
    const { rows } = await pool.query<{ id: string; revision: number; data: unknown }>("SELECT id, revision, data FROM sync_documents WHERE service = 'board' ORDER BY id");
    expect(rows).toEqual([
      { id: 'b1', revision: 2, data: { x: 1, y: 'a whole 😀 pair' } },
      { id: 'b2', revision: 1, data: { title: 'ab' } },
    ]);
    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});
