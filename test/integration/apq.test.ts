/**
 * Automatic persisted queries (Apollo's protocol) over raw HTTP and graphql-ws: the
 * PERSISTED_QUERY_NOT_FOUND round trip, GET and POST, the hash check and the bounded store.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

let server: TestServer;

beforeAll(async () => {
  // No JWT settings: every caller is the development principal.
  server = await startTestServer({ APQ_MAX_ENTRIES: '2' }, { autoDispose: false });
});
afterAll(() => server.dispose());

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const persisted = (query: string) => ({ persistedQuery: { version: 1, sha256Hash: sha256(query) } });

async function post(body: Record<string, unknown>): Promise<{ status: number; body: GraphQLResponseBody }> {
  const response = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as GraphQLResponseBody };
}

async function get(params: Record<string, unknown>): Promise<{ status: number; body: GraphQLResponseBody }> {
  const search = new URLSearchParams(Object.entries(params).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]));
  const response = await fetch(`${server.graphqlUrl}?${search.toString()}`, { headers: { accept: 'application/json' } });
  return { status: response.status, body: (await response.json()) as GraphQLResponseBody };
}

describe('automatic persisted queries', () => {
  it('answers an unknown hash with PERSISTED_QUERY_NOT_FOUND, then runs it by hash once the query was sent with it (POST and GET)', async () => {
    const query = '{ viewer { subject } }';
    const unknown = await post({ extensions: persisted(query) });
    expect(unknown.status).toBe(200);
    expect(unknown.body).toEqual({ errors: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });
    expect((await get({ extensions: persisted(query) })).body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_NOT_FOUND');

    const registered = await post({ query, extensions: persisted(query) });
    expect(registered).toEqual({ status: 200, body: { data: { viewer: { subject: 'development' } } } });
    expect(await post({ extensions: persisted(query) })).toEqual({ status: 200, body: { data: { viewer: { subject: 'development' } } } });
    expect(await get({ extensions: persisted(query) })).toEqual({ status: 200, body: { data: { viewer: { subject: 'development' } } } });
  });

  it('refuses a query that does not match its hash, and a version other than 1', async () => {
    const mismatch = await post({ query: '{ viewer { app } }', extensions: persisted('{ viewer { env } }') });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.errors?.[0]).toMatchObject({ message: 'provided sha does not match query', extensions: { code: 'BAD_USER_INPUT' } });
    const version = await post({ extensions: { persistedQuery: { version: 2, sha256Hash: sha256('{ viewer { app } }') } } });
    expect(version.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
  });

  it.each([
    ['a number', 5],
    ['an object', { query: '{ viewer { subject } }' }],
  ])('answers a query that is %s, with a hash, as yoga does without one: 400 BAD_REQUEST', async (_label, query) => {
    const withHash = await post({ query, extensions: persisted('{ viewer { subject } }') });
    expect(withHash.status).toBe(400);
    expect(withHash.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_REQUEST']);
    expect(withHash).toEqual(await post({ query }));
  });

  it('keeps at most APQ_MAX_ENTRIES queries, evicting the least recently used', async () => {
    const [a, b, c] = ['query A { viewer { app } }', 'query B { viewer { env } }', 'query C { viewer { tenant } }'];
    await post({ query: a, extensions: persisted(a) });
    await post({ query: b, extensions: persisted(b) });
    expect((await post({ extensions: persisted(a) })).body.data).toEqual({ viewer: { app: 'default' } }); // a is now the most recent
    await post({ query: c, extensions: persisted(c) }); // evicts b
    expect((await post({ extensions: persisted(b) })).body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await post({ extensions: persisted(a) })).body.data).toEqual({ viewer: { app: 'default' } });
    expect((await post({ extensions: persisted(c) })).body.data).toEqual({ viewer: { tenant: 'default' } });
  });

  it('works over graphql-ws with an empty query string and the hash', async () => {
    const query = 'query WsViewer { viewer { roles } }';
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: '1', type: 'subscribe', payload: { query: '', extensions: persisted(query) } });
    expect(await client.nextMessage()).toEqual({ id: '1', type: 'error', payload: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });
    client.send({ id: '2', type: 'subscribe', payload: { query, extensions: persisted(query) } });
    expect(await client.nextMessage()).toEqual({ id: '2', type: 'next', payload: { data: { viewer: { roles: ['admin'] } } } });
    expect(await client.nextMessage()).toEqual({ id: '2', type: 'complete' });
    client.send({ id: '3', type: 'subscribe', payload: { query: '', extensions: persisted(query) } });
    expect(await client.nextMessage()).toEqual({ id: '3', type: 'next', payload: { data: { viewer: { roles: ['admin'] } } } });
  });
});
