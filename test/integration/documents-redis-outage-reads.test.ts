/**
 * Document reads while the hot cache's Redis is down. In `sync` durability Postgres holds every
 * acknowledged revision, so `document` and `documents` are answered from it; writes still need
 * the cache (its lock and revision check) and are answered UNAVAILABLE. In `async` durability the
 * cache may hold acknowledged revisions Postgres lacks, so reads stay UNAVAILABLE rather than show
 * an older revision. Every server here runs in development mode (app/env/tenant "default").
 */
import { describe, expect, it } from 'vitest';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const GET = 'query($s: String!, $id: ID!) { document(service: $s, id: $id) { revision data } }';
const LIST = 'query($s: String!, $f: Int, $a: String) { documents(service: $s, first: $f, after: $a) { edges { node { id revision data } } pageInfo { hasNextPage endCursor } } }';
const CREATE = 'mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { revision } }';
const MERGE = 'mutation($s: String!, $id: ID!, $p: JSON!) { mergeDocument(service: $s, id: $id, patch: $p) { revision } }';

async function gql(server: TestServer, query: string, variables: Record<string, unknown>): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables })).body;
}

async function ok(server: TestServer, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
  const body = await gql(server, query, variables);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data ?? {};
}

function codeOf(body: GraphQLResponseBody): unknown {
  return body.errors?.[0]?.extensions?.['code'];
}

describe('document reads while Redis is down', () => {
  it('answers document and documents from Postgres in sync durability, and refuses writes', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'sync' });
    await ok(server, CREATE, { s: 'boards', id: 'a', d: { v: 1 } });
    await ok(server, MERGE, { s: 'boards', id: 'a', p: { v: 2 } });
    await ok(server, CREATE, { s: 'boards', id: 'b', d: { w: 1 } });

    await redis.stop();

    expect(await ok(server, GET, { s: 'boards', id: 'a' })).toEqual({ document: { revision: 2, data: { v: 2 } } });
    expect(await ok(server, GET, { s: 'boards', id: 'missing' })).toEqual({ document: null });
    const first = (await ok(server, LIST, { s: 'boards', f: 1 })) as { documents: { pageInfo: { endCursor: string } } };
    expect(first).toMatchObject({
      documents: { edges: [{ node: { id: 'a', revision: 2, data: { v: 2 } } }], pageInfo: { hasNextPage: true } },
    });
    expect(await ok(server, LIST, { s: 'boards', f: 1, a: first.documents.pageInfo.endCursor })).toMatchObject({
      documents: { edges: [{ node: { id: 'b', revision: 1 } }], pageInfo: { hasNextPage: false } },
    });
    // A write needs the cache's lock and revision check: it is refused, not written around it.
    expect(codeOf(await gql(server, MERGE, { s: 'boards', id: 'a', p: { v: 3 } }))).toBe('UNAVAILABLE');
    expect(await ok(server, GET, { s: 'boards', id: 'a' })).toEqual({ document: { revision: 2, data: { v: 2 } } });

    await redis.start();
    await waitFor(async () => !(await gql(server, MERGE, { s: 'boards', id: 'a', p: { v: 3 } })).errors, { timeoutMs: 15_000, message: 'a write once Redis is back' });
    expect(await ok(server, GET, { s: 'boards', id: 'a' })).toEqual({ document: { revision: 3, data: { v: 3 } } });
  });

  it('keeps reads UNAVAILABLE in async durability, where Postgres may lack acknowledged revisions', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' });
    await ok(server, CREATE, { s: 'boards', id: 'a', d: { v: 1 } });

    await redis.stop();

    expect(codeOf(await gql(server, GET, { s: 'boards', id: 'a' }))).toBe('UNAVAILABLE');
    expect(codeOf(await gql(server, LIST, { s: 'boards', f: 10 }))).toBe('UNAVAILABLE');
    expect(codeOf(await gql(server, MERGE, { s: 'boards', id: 'a', p: { v: 2 } }))).toBe('UNAVAILABLE');
  });
});
