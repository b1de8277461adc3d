import { beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const FIELDS = 'service id revision data createdAt updatedAt';

/** The database alone, and the Redis hot cache in front of it in both durability modes. */
const MODES: Record<string, () => Record<string, string>> = {
  database: () => ({}),
  'redis cache, sync': () => ({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'sync' }),
  'redis cache, async': () => ({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' }),
};

describe.each(Object.keys(MODES))('sync documents (%s)', (mode) => {
  let server: TestServer;
  let services = 0;
  beforeAll(async () => {
    server = await startTestServer(MODES[mode]!(), { autoDispose: false });
    return () => server.dispose();
  });
  /** A service of its own per test: tests share the server. */
  const freshService = () => `svc${(services += 1)}`;

  async function gql(query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
    return (await postGraphQL(server.graphqlUrl, { query, variables })).body;
  }
  const create = (service: string, id: string, data: unknown) =>
    gql(`mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { ${FIELDS} } }`, { s: service, id, d: data });
  const merge = (service: string, id: string, patch: unknown, expectedRevision?: number) =>
    gql(`mutation($s: String!, $id: ID!, $p: JSON!, $r: Int) { mergeDocument(service: $s, id: $id, patch: $p, expectedRevision: $r) { revision data } }`, {
      s: service,
      id,
      p: patch,
      r: expectedRevision,
    });
  const get = (service: string, id: string) => gql(`query($s: String!, $id: ID!) { document(service: $s, id: $id) { revision data } }`, { s: service, id });
  const code = (body: GraphQLResponseBody) => body.errors?.[0]?.extensions?.['code'];

  it('creates a document at revision 1 and reads it back', async () => {
    const service = freshService();
    const created = await create(service, 'd1', { title: 'Board' });
    expect(created.data?.['createDocument']).toMatchObject({ service, id: 'd1', revision: 1, data: { title: 'Board' } });
    expect((await get(service, 'd1')).data?.['document']).toEqual({ revision: 1, data: { title: 'Board' } });
    expect((await get(service, 'missing')).data?.['document']).toBeNull();
  });

  it('generates an id when none is given and refuses to create an existing one with CONFLICT', async () => {
    const service = freshService();
    const generated = await gql(`mutation($s: String!) { createDocument(service: $s, data: {}) { id revision } }`, { s: service });
    const id = (generated.data?.['createDocument'] as { id: string }).id;
    expect(id).toMatch(/^doc_/);
    const again = await create(service, id, { x: 1 });
    expect(code(again)).toBe('CONFLICT');
    expect(again.errors?.[0]?.extensions?.['currentRevision']).toBe(1);
  });

  it('replaces and merges with JSON Merge Patch semantics, and checks expectedRevision', async () => {
    const service = freshService();
    await create(service, 'd', { a: 1, nested: { keep: true, drop: 'x' }, list: [1, 2] });
    const merged = await merge(service, 'd', { b: 2, nested: { drop: null, added: 1 }, list: [3] }, 1);
    expect(merged.data?.['mergeDocument']).toEqual({ revision: 2, data: { a: 1, b: 2, nested: { keep: true, added: 1 }, list: [3] } });

    const stale = await merge(service, 'd', { c: 3 }, 1);
    expect(code(stale)).toBe('CONFLICT');
    expect(stale.errors?.[0]?.extensions?.['currentRevision']).toBe(2);

    const replaced = await gql(`mutation($s: String!) { replaceDocument(service: $s, id: "d", data: { only: true }, expectedRevision: 2) { revision data } }`, {
      s: service,
    });
    expect(replaced.data?.['replaceDocument']).toEqual({ revision: 3, data: { only: true } });
  });

  it('deletes a document, answers NOT_FOUND afterwards, and keeps revisions increasing when it is created again', async () => {
    const service = freshService();
    await create(service, 'd', { v: 1 });
    const deleted = await gql(`mutation($s: String!) { deleteDocument(service: $s, id: "d", expectedRevision: 1) { revision data } }`, { s: service });
    expect(deleted.data?.['deleteDocument']).toEqual({ revision: 2, data: { v: 1 } });
    expect((await get(service, 'd')).data?.['document']).toBeNull();
    expect(code(await merge(service, 'd', { v: 2 }))).toBe('NOT_FOUND');
    expect(code(await gql(`mutation($s: String!) { deleteDocument(service: $s, id: "d") { revision } }`, { s: service }))).toBe('NOT_FOUND');
    const recreated = await create(service, 'd', { v: 3 });
    expect(recreated.data?.['createDocument']).toMatchObject({ revision: 3, data: { v: 3 } });
  });

  it('pages through a service by id, in byte order, whatever the case', async () => {
    const service = freshService();
    for (const id of ['c', 'a', 'E', 'b', 'D']) await create(service, id, { id });
    const page = (after?: string) =>
      gql(`query($s: String!, $after: String) { documents(service: $s, first: 2, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`, {
        s: service,
        after,
      });
    const ids: string[] = [];
    let after: string | undefined;
    for (let n = 0; n < 3; n += 1) {
      const connection = (await page(after)).data?.['documents'] as {
        edges: { node: { id: string } }[];
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
      };
      ids.push(...connection.edges.map((edge) => edge.node.id));
      after = connection.pageInfo.endCursor ?? undefined;
      expect(connection.pageInfo.hasNextPage).toBe(n < 2);
    }
    expect(ids).toEqual(['D', 'E', 'a', 'b', 'c']);
  });

  it.each([
    ['a bad service name', { s: 'Bad Service', id: 'd', d: {} }, 'service'],
    ['a bad id', { s: 'ok', id: 'has space', d: {} }, 'id'],
    ['data that is not an object', { s: 'ok', id: 'd', d: [1, 2] }, 'data'],
    ['a document over the size limit', { s: 'ok', id: 'big', d: { blob: 'x'.repeat(300 * 1024) } }, 'data'],
  ])('refuses %s with BAD_USER_INPUT', async (_name, variables, field) => {
    const body = await gql(`mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { id } }`, variables);
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
  });

  it('publishes created, updated and deleted events with revisions and RFC 6902 diffs, in order', async () => {
    const service = freshService();
    const client = await openAcknowledgedSocket(server.wsUrl);
    for (const operation of ['created', 'updated', 'deleted']) {
      client.send({
        id: operation,
        type: 'subscribe',
        payload: { query: `subscription { events(topic: "sync.${service}.${operation}") { type source payload metadata { revision } } }` },
      });
    }
    await waitFor(() => server.stats().subscribers === 3);
    await create(service, 'd', { a: 1 });
    await merge(service, 'd', { b: 2 });
    await gql(`mutation($s: String!) { deleteDocument(service: $s, id: "d") { revision } }`, { s: service });

    const received = [await client.nextMessage(), await client.nextMessage(), await client.nextMessage()];
    expect(received.map((message) => message.id)).toEqual(['created', 'updated', 'deleted']);
    const events = received.map((message) => (message.payload as { data: { events: Record<string, unknown> } }).data.events);
    expect(events[0]).toEqual({ type: 'sync.created', source: 'SYNC', metadata: { revision: 1 }, payload: { service, documentId: 'd', revision: 1, data: { a: 1 } } });
    expect(events[1]).toEqual({
      type: 'sync.updated',
      source: 'SYNC',
      metadata: { revision: 2 },
      payload: { service, documentId: 'd', revision: 2, data: { a: 1, b: 2 }, diff: [{ op: 'add', path: '/b', value: 2 }] },
    });
    expect(events[2]).toMatchObject({ type: 'sync.deleted', metadata: { revision: 3 }, payload: { revision: 3, data: null } });
  });

  it('under 30 concurrent writers gives exactly one success per revision, loses no update, and publishes every revision once in order', async () => {
    const service = freshService();
    await create(service, 'hot', {});
    const client: RawSocket = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'u', type: 'subscribe', payload: { query: `subscription { events(topic: "sync.${service}.updated") { payload } }` } });
    await waitFor(() => server.stats().subscribers === 1);

    const writers = 30;
    let attempts = 0;
    let conflicts = 0;
    let successes = 0;
    await Promise.all(
      Array.from({ length: writers }, async (_unused, writer) => {
        for (let tries = 0; tries < 200; tries += 1) {
          const current = (await get(service, 'hot')).data?.['document'] as { revision: number };
          attempts += 1;
          const result = await merge(service, 'hot', { [`w${writer}`]: true }, current.revision);
          if (!result.errors) {
            successes += 1;
            return;
          }
          expect(code(result)).toBe('CONFLICT');
          conflicts += 1;
        }
        throw new Error(`writer ${writer} never succeeded`);
      }),
    );
    expect(successes).toBe(writers);
    expect(successes + conflicts).toBe(attempts);
    const final = (await get(service, 'hot')).data?.['document'] as { revision: number; data: Record<string, boolean> };
    expect(final.revision).toBe(1 + writers);
    expect(Object.keys(final.data).sort()).toEqual(Array.from({ length: writers }, (_unused, writer) => `w${writer}`).sort());

    const revisions: number[] = [];
    while (revisions.length < writers) {
      const message = await client.nextMessage();
      revisions.push((message.payload as { data: { events: { payload: { revision: number } } } }).data.events.payload.revision);
    }
    expect(revisions).toEqual(Array.from({ length: writers }, (_unused, index) => index + 2));
  });
});

describe('sync document permissions', () => {
  it('needs sync.{service}.read to read and sync.{service}.write to write', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const reader = await signHs256({ permissions: ['sync.notes.read'] });
    const writer = await signHs256({ permissions: ['sync.notes.write', 'sync.notes.read'] });
    const as = (token: string, query: string) => postGraphQL(server.graphqlUrl, { query }, { authorization: `Bearer ${token}` });

    expect((await as(reader, 'mutation { createDocument(service: "notes", id: "n", data: {}) { id } }')).body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect((await as(writer, 'mutation { createDocument(service: "notes", id: "n", data: {}) { id } }')).body.errors).toBeUndefined();
    expect((await as(reader, '{ document(service: "notes", id: "n") { id } }')).body.data).toEqual({ document: { id: 'n' } });
    expect((await as(reader, '{ document(service: "other", id: "n") { id } }')).body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });

  it('keeps tenants apart: the same service and id are different documents', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const a = await signHs256({ tenant: 'a', roles: ['admin'] });
    const b = await signHs256({ tenant: 'b', roles: ['admin'] });
    const as = (token: string, query: string) => postGraphQL(server.graphqlUrl, { query }, { authorization: `Bearer ${token}` });
    await as(a, 'mutation { createDocument(service: "notes", id: "n", data: { owner: "a" }) { id } }');
    expect((await as(b, '{ document(service: "notes", id: "n") { data } }')).body.data).toEqual({ document: null });
    expect((await as(b, 'mutation { createDocument(service: "notes", id: "n", data: { owner: "b" }) { revision } }')).body.data).toEqual({
      createDocument: { revision: 1 },
    });
    expect((await as(a, '{ document(service: "notes", id: "n") { data } }')).body.data).toEqual({ document: { data: { owner: 'a' } } });
  });
});

describe('sync documents in embedded mode', () => {
  it('creates, merges and reads documents on the embedded database', async () => {
    const server = await startTestServer({}, { embedded: true });
    const call = (query: string) => postGraphQL(server.graphqlUrl, { query });
    await call('mutation { createDocument(service: "cart", id: "c1", data: { items: 1 }) { revision } }');
    const merged = await call('mutation { mergeDocument(service: "cart", id: "c1", patch: { items: 2 }, expectedRevision: 1) { revision data } }');
    expect(merged.body.data).toEqual({ mergeDocument: { revision: 2, data: { items: 2 } } });
  });
});

describe('sync documents across a restart', () => {
  it('keeps every document and its revision when the server restarts on the same database', async () => {
    const database = await createTestDatabase();
    const first = await startTestServer({ DATABASE_URL: database.url });
    await postGraphQL(first.graphqlUrl, { query: 'mutation { createDocument(service: "keep", id: "k", data: { v: 1 }) { revision } }' });
    await postGraphQL(first.graphqlUrl, { query: 'mutation { mergeDocument(service: "keep", id: "k", patch: { v: 2 }) { revision } }' });
    await first.dispose();

    const second = await startTestServer({ DATABASE_URL: database.url });
    const read = await postGraphQL(second.graphqlUrl, { query: '{ document(service: "keep", id: "k") { revision data } }' });
    expect(read.body.data).toEqual({ document: { revision: 2, data: { v: 2 } } });
    const next = await postGraphQL(second.graphqlUrl, { query: 'mutation { mergeDocument(service: "keep", id: "k", patch: { v: 3 }, expectedRevision: 2) { revision } }' });
    expect(next.body.data).toEqual({ mergeDocument: { revision: 3 } });
  });
});
