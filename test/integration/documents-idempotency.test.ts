/**
 * Document writes under an idempotency key (`keyed-writes.ts`): a write whose answer was lost,
 * retried with its key — on the other instance — is applied once and answered as the first try
 * was; the same key for another request is CONFLICT, a try while another holds the key CONFLICT
 * with `inFlight`, and a try refused frees its key. Two instances sharing Postgres and Redis (the
 * cache in both durabilities), and the embedded mode (one instance, keys in its memory).
 */
import { describe, expect, it } from 'vitest';
import { subscribeEvents, takeEvents } from '../helpers/events.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

type Setup = 'two instances, Redis, sync' | 'two instances, Redis, async' | 'embedded';
const SETUPS: readonly Setup[] = ['two instances, Redis, sync', 'two instances, Redis, async', 'embedded'];

/** The instances: A makes the first try, B the retry (the same one in the embedded mode). */
async function start(setup: Setup): Promise<{ A: TestServer; B: TestServer }> {
  if (setup === 'embedded') {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { embedded: true });
    return { A: server, B: server };
  }
  const database = await createTestDatabase({ migrated: true });
  const env = {
    JWT_SECRET: TEST_SECRET,
    DATABASE_URL: database.url,
    REDIS_URL: testRedisUrl(),
    REDIS_KEY_PREFIX: uniquePrefix(),
    SYNC_DURABILITY: setup.endsWith('async') ? 'async' : 'sync',
  };
  return { A: await startTestServer(env), B: await startTestServer(env) };
}

const DOCUMENT = 'id revision data createdAt updatedAt';
const CREATE = `mutation($s: String!, $id: ID, $d: JSON!, $k: String) { createDocument(service: $s, id: $id, data: $d, idempotencyKey: $k) { ${DOCUMENT} } }`;
const REPLACE = `mutation($s: String!, $id: ID!, $d: JSON!, $r: Int, $k: String) { replaceDocument(service: $s, id: $id, data: $d, expectedRevision: $r, idempotencyKey: $k) { ${DOCUMENT} } }`;
const MERGE = `mutation($s: String!, $id: ID!, $d: JSON!, $r: Int, $k: String) { mergeDocument(service: $s, id: $id, patch: $d, expectedRevision: $r, idempotencyKey: $k) { ${DOCUMENT} } }`;
const DELETE = `mutation($s: String!, $id: ID!, $k: String) { deleteDocument(service: $s, id: $id, idempotencyKey: $k) { ${DOCUMENT} } }`;
const LIST = 'query($s: String!) { documents(service: $s) { edges { node { id } } } }';

interface Doc {
  readonly id: string;
  readonly revision: number;
  readonly data: Record<string, unknown>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

const user = () => signHs256({ sub: 'writer', permissions: ['sync.read', 'sync.write', 'orders.publish'] });

async function call(server: TestServer, token: string, query: string, variables: Record<string, unknown>): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

/** The mutation's document, which must have been answered. */
function answered(body: GraphQLResponseBody): Doc {
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return Object.values(body.data ?? {})[0] as Doc;
}

const codeOf = (body: GraphQLResponseBody) => body.errors?.map((error) => [error.extensions?.['code'], error.extensions?.['field'] ?? null, error.extensions?.['inFlight'] ?? null]);

describe.each(SETUPS)('document writes with an idempotency key (%s)', (setup) => {
  it('applies a write whose answer was lost once, however often it is retried, and answers the retry as the first try', { timeout: 60_000 }, async () => {
    const { A, B } = await start(setup);
    const token = await user();
    const cursor = (await call(A, token, 'query { topicCursor(topic: "sync.notes.doc.d") }', {})).data?.['topicCursor'] as string;

    // Each first try's answer is "lost": the client retries on the other instance.
    const created = answered(await call(A, token, CREATE, { s: 'notes', id: 'd', d: { title: 'a' }, k: 'create-d' }));
    expect(answered(await call(B, token, CREATE, { s: 'notes', id: 'd', d: { title: 'a' }, k: 'create-d' }))).toEqual(created);
    const replaced = answered(await call(A, token, REPLACE, { s: 'notes', id: 'd', d: { title: 'b', n: 1 }, k: 'replace-d' }));
    expect(answered(await call(B, token, REPLACE, { s: 'notes', id: 'd', d: { n: 1, title: 'b' }, k: 'replace-d' }))).toEqual(replaced);
    const merged = answered(await call(A, token, MERGE, { s: 'notes', id: 'd', d: { n: 2 }, k: 'merge-d' }));
    expect(merged).toMatchObject({ revision: 3, data: { title: 'b', n: 2 } });
    expect(answered(await call(B, token, MERGE, { s: 'notes', id: 'd', d: { n: 2 }, k: 'merge-d' }))).toEqual(merged);
    expect(answered(await call(A, token, MERGE, { s: 'notes', id: 'd', d: { n: 2 }, k: 'merge-d' }))).toEqual(merged);
    const deleted = answered(await call(A, token, DELETE, { s: 'notes', id: 'd', k: 'delete-d' }));
    expect(deleted).toMatchObject({ revision: 4, data: { title: 'b', n: 2 } });
    // Its content is kept nowhere, the key's record included: the retry has the rest.
    expect(answered(await call(B, token, DELETE, { s: 'notes', id: 'd', k: 'delete-d' }))).toEqual({ ...deleted, data: {} });

    // A create that lets the server choose the id: its retry gets the first one's id, and makes no other.
    const generated = answered(await call(A, token, CREATE, { s: 'drafts', d: { x: 1 }, k: 'create-draft' }));
    expect(answered(await call(B, token, CREATE, { s: 'drafts', d: { x: 1 }, k: 'create-draft' }))).toEqual(generated);
    const listed = (await call(B, token, LIST, { s: 'drafts' })).data?.['documents'] as { edges: { node: { id: string } }[] };
    expect(listed.edges.map((edge) => edge.node.id)).toEqual([generated.id]);

    // The document's stream holds one event per write: created again, it continues at 5.
    expect(answered(await call(B, token, CREATE, { s: 'notes', id: 'd', d: {} })).revision).toBe(5);
    const client = await openAcknowledgedSocket(A.wsUrl, token);
    subscribeEvents(client, 'since', { topic: 'sync.notes.doc.d', after: cursor });
    const events = await takeEvents(client, 'since', 5);
    expect(events.map((event) => event.payload['revision'])).toEqual([1, 2, 3, 4, 5]);
    client.socket.close();
  });

  it('refuses a key used for another request, and a try while another holds the key, with CONFLICT', { timeout: 60_000 }, async () => {
    const { A, B } = await start(setup);
    const token = await user();
    answered(await call(A, token, CREATE, { s: 'notes', id: 'd', d: { v: 0 }, k: 'k-create' }));
    // Another document, mutation, data or expectedRevision: CONFLICT on the key, nothing written.
    expect(codeOf(await call(B, token, CREATE, { s: 'notes', id: 'e', d: { v: 0 }, k: 'k-create' }))).toEqual([['CONFLICT', 'idempotencyKey', null]]);
    expect(codeOf(await call(B, token, REPLACE, { s: 'notes', id: 'd', d: { v: 0 }, k: 'k-create' }))).toEqual([['CONFLICT', 'idempotencyKey', null]]);
    answered(await call(A, token, MERGE, { s: 'notes', id: 'd', d: { v: 1 }, k: 'k-merge' }));
    expect(codeOf(await call(B, token, MERGE, { s: 'notes', id: 'd', d: { v: 2 }, k: 'k-merge' }))).toEqual([['CONFLICT', 'idempotencyKey', null]]);
    expect(codeOf(await call(B, token, MERGE, { s: 'notes', id: 'd', d: { v: 1 }, r: 2, k: 'k-merge' }))).toEqual([['CONFLICT', 'idempotencyKey', null]]);
    // A key is one request of the scope: a publish's key too.
    const publish = await call(A, token, 'mutation($k: String) { publish(topic: "orders", payload: { n: 1 }, idempotencyKey: $k) { id } }', { k: 'k-publish' });
    expect(publish.errors).toBeUndefined();
    expect(codeOf(await call(B, token, MERGE, { s: 'notes', id: 'd', d: { v: 1 }, k: 'k-publish' }))).toEqual([['CONFLICT', 'idempotencyKey', null]]);
    expect(codeOf(await call(B, token, MERGE, { s: 'notes', id: 'd', d: {}, k: 'has a space' }))).toEqual([['BAD_USER_INPUT', 'idempotencyKey', null]]);

    // One write with one key sent at once, to both instances: made once; the others answered with it or told to retry.
    const answers = await Promise.all(Array.from({ length: 8 }, (_unused, n) => call(n % 2 === 0 ? A : B, token, MERGE, { s: 'notes', id: 'd', d: { v: 9 }, k: 'k-burst' })));
    const made = answers.flatMap((body) => (body.errors === undefined ? [answered(body)] : []));
    const refusals = answers.filter((body) => body.errors !== undefined).map(codeOf);
    expect(made.length).toBeGreaterThan(0);
    expect(new Set(made.map((document) => document.revision))).toEqual(new Set([3]));
    expect(refusals).toEqual(refusals.map(() => [['CONFLICT', 'idempotencyKey', true]]));
    expect(answered(await call(B, token, 'query { document(service: "notes", id: "d") { id revision data createdAt updatedAt } }', {}))).toMatchObject({ revision: 3, data: { v: 9 } });
  });

  it('frees the key of a try that saved nothing: its retry is made once it can be', { timeout: 60_000 }, async () => {
    const { A, B } = await start(setup);
    const token = await user();
    answered(await call(A, token, CREATE, { s: 'notes', id: 'd', d: { v: 1 } }));
    // expectedRevision 2, the document is at 1: refused, nothing saved.
    const refused = await call(A, token, REPLACE, { s: 'notes', id: 'd', d: { v: 3 }, r: 2, k: 'k-replace' });
    expect(refused.errors?.map((error) => [error.extensions?.['code'], error.extensions?.['currentRevision']])).toEqual([['CONFLICT', 1]]);
    answered(await call(B, token, MERGE, { s: 'notes', id: 'd', d: { v: 2 } }));
    // Now at 2: the same request under the same key is a first try again, made, and then remembered.
    const made = answered(await call(B, token, REPLACE, { s: 'notes', id: 'd', d: { v: 3 }, r: 2, k: 'k-replace' }));
    expect(made).toMatchObject({ revision: 3, data: { v: 3 } });
    expect(answered(await call(A, token, REPLACE, { s: 'notes', id: 'd', d: { v: 3 }, r: 2, k: 'k-replace' }))).toEqual(made);
  });
});
