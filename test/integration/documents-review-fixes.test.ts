import { Redis } from 'ioredis';
import { applyPatch, type Operation } from 'rfc6902';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

/*
 * Sync documents as a review found them wanting: a DIFF subscriber that could not rebuild a
 * created document, a deletion that kept the document's content in its tombstone, and a
 * per-document read permission honoured by `events` but not by `document`. Servers run with
 * JWT_SECRET: documents live in app "shop", env "prod", tenant "tenant-a" (the test tokens').
 */

const MODES: Record<string, () => Record<string, string>> = {
  database: () => ({}),
  'redis cache, sync': () => ({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'sync' }),
  'redis cache, async': () => ({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' }),
};

const ADMIN = { sub: 'admin', roles: ['admin'], permissions: [] };

type As = (token: string, query: string, variables?: Record<string, unknown>) => Promise<GraphQLResponseBody>;

function caller(server: TestServer): As {
  return async (token, query, variables = {}) => (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

const CREATE = 'mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { revision data } }';
const MERGE = 'mutation($s: String!, $id: ID!, $p: JSON!) { mergeDocument(service: $s, id: $id, patch: $p) { revision data } }';
const REPLACE = 'mutation($s: String!, $id: ID!, $d: JSON!) { replaceDocument(service: $s, id: $id, data: $d) { revision data } }';
const DELETE = 'mutation($s: String!, $id: ID!) { deleteDocument(service: $s, id: $id) { revision data } }';
const GET = 'query($s: String!, $id: ID!) { document(service: $s, id: $id) { revision data } }';
const SUBSCRIBE = 'subscription($s: String!, $id: ID!, $m: ReturnMode) { document(service: $s, id: $id, returnMode: $m) { operation revision data diff } }';

interface Change {
  readonly operation: string;
  readonly revision: number;
  readonly data: Record<string, unknown> | null;
  readonly diff: Operation[] | null;
}

function subscribeDocument(client: RawSocket, id: string, variables: Record<string, unknown>): void {
  client.send({ id, type: 'subscribe', payload: { query: SUBSCRIBE, variables } });
}

/** The socket's messages sorted by operation id, so that waiting for one operation skips none of another's. */
function inbox(client: RawSocket): (id: string) => Promise<ReceivedMessage> {
  const held = new Map<string, ReceivedMessage[]>();
  return async (id) => {
    for (;;) {
      const kept = held.get(id)?.shift();
      if (kept) return kept;
      const message = await client.nextMessage();
      if (message.id === id) return message;
      held.set(message.id ?? '', [...(held.get(message.id ?? '') ?? []), message]);
    }
  };
}

/** The `document` message of a `next`. */
function changeOf(message: ReceivedMessage): Change {
  expect(message.type, JSON.stringify(message)).toBe('next');
  return (message.payload as { data: { document: Change } }).data.document;
}

/**
 * What a DIFF client does with a message: a snapshot or a creation is the base (its data), an
 * update's diff applies to it, a deletion leaves nothing.
 */
function rebuild(state: Record<string, unknown> | null, change: Change): Record<string, unknown> | null {
  if (change.operation === 'SNAPSHOT' || change.operation === 'CREATED') return change.data;
  if (change.operation === 'DELETED') return null;
  if (state === null || change.diff === null) throw new Error(`cannot apply ${JSON.stringify(change)} to ${JSON.stringify(state)}`);
  const next = structuredClone(state);
  const failures = applyPatch(next, change.diff).filter((failure) => failure !== null);
  expect(failures).toEqual([]);
  return next;
}

describe.each(Object.keys(MODES))('sync documents after the review (%s)', (mode) => {
  it('gives returnMode DIFF subscribers the data of a created document, so they rebuild it across a deletion and a re-creation', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ...MODES[mode]!() });
    const as = caller(server);
    const admin = await signHs256(ADMIN);
    await as(admin, CREATE, { s: 'boards', id: 'kept', d: { a: 1 } });

    const client = await openAcknowledgedSocket(server.wsUrl, admin);
    const next = inbox(client);
    const nextChange = async (id: string) => changeOf(await next(id));
    subscribeDocument(client, 'kept', { s: 'boards', id: 'kept', m: 'DIFF' });
    // Subscribed before its document exists: the snapshot has nothing, the creation is the base.
    subscribeDocument(client, 'later', { s: 'boards', id: 'later', m: 'DIFF' });
    client.send({ id: 'created', type: 'subscribe', payload: { query: 'subscription { events(topic: "sync.boards.created", returnMode: DIFF) { payload } }' } });
    let kept = rebuild(null, await nextChange('kept'));
    let later = rebuild(null, await nextChange('later'));
    expect([kept, later]).toEqual([{ a: 1 }, null]);
    await waitFor(() => server.stats().subscribers === 3, { message: 'the three subscriptions are live' });

    await as(admin, DELETE, { s: 'boards', id: 'kept' });
    await as(admin, CREATE, { s: 'boards', id: 'kept', d: { title: 'recreated', items: [1, 2] } });
    await as(admin, MERGE, { s: 'boards', id: 'kept', p: { more: true, items: [1, 2, 3] } });
    await as(admin, CREATE, { s: 'boards', id: 'later', d: { n: 1 } });
    await as(admin, MERGE, { s: 'boards', id: 'later', p: { n: 2 } });

    const keptChanges = [await nextChange('kept'), await nextChange('kept'), await nextChange('kept')];
    expect(keptChanges.map((change) => [change.operation, change.revision])).toEqual([
      ['DELETED', 2],
      ['CREATED', 3],
      ['UPDATED', 4],
    ]);
    // DIFF still strips the data of updates and deletions.
    expect(keptChanges.map((change) => change.data)).toEqual([null, { title: 'recreated', items: [1, 2] }, null]);
    for (const change of keptChanges) kept = rebuild(kept, change);
    for (const change of [await nextChange('later'), await nextChange('later')]) later = rebuild(later, change);

    expect(kept).toEqual({ title: 'recreated', items: [1, 2, 3], more: true });
    expect((await as(admin, GET, { s: 'boards', id: 'kept' })).data).toEqual({ document: { revision: 4, data: kept } });
    expect((await as(admin, GET, { s: 'boards', id: 'later' })).data).toEqual({ document: { revision: 2, data: later } });

    const created = [await next('created'), await next('created')].map((message) => (message.payload as { data: { events: { payload: unknown } } }).data.events.payload);
    expect(created).toEqual([
      { service: 'boards', documentId: 'kept', revision: 3, data: { title: 'recreated', items: [1, 2] } },
      { service: 'boards', documentId: 'later', revision: 1, data: { n: 1 } },
    ]);
  });

  it('keeps no content in a deleted document, yet answers and publishes the deletion as before, and a re-creation continues its revisions', async () => {
    const database = await createTestDatabase({ migrated: true });
    const cache = MODES[mode]!();
    const env = { JWT_SECRET: TEST_SECRET, DATABASE_URL: database.url, ...cache };
    const server = await startTestServer(env);
    const as = caller(server);
    const admin = await signHs256(ADMIN);
    const personal = { email: 'ada@example.com', ssn: '123-45-6789' };
    await as(admin, CREATE, { s: 'people', id: 'ada', d: personal });
    const client = await openAcknowledgedSocket(server.wsUrl, admin);
    const next = inbox(client);
    const nextChange = async (id: string) => changeOf(await next(id));
    subscribeDocument(client, 'doc', { s: 'people', id: 'ada' });
    expect(await nextChange('doc')).toMatchObject({ operation: 'SNAPSHOT', revision: 1, data: personal });

    // The answer is the document as it was, with the deletion's revision; the event has no data
    // and the diff from the content to nothing.
    expect((await as(admin, DELETE, { s: 'people', id: 'ada' })).data).toEqual({ deleteDocument: { revision: 2, data: personal } });
    expect(await nextChange('doc')).toEqual({ operation: 'DELETED', revision: 2, data: null, diff: [{ op: 'replace', path: '', value: null }] });

    // What the server keeps: Postgres (async: once flushed) and the cache entry, if any.
    const pool = openTestPool(database.url);
    const row = () =>
      pool.query<{ revision: number; deleted: boolean; data: unknown }>('SELECT revision, deleted, data FROM sync_documents WHERE service = $1 AND id = $2', ['people', 'ada']);
    await waitFor(async () => (await row()).rows[0]?.revision === 2, { message: 'the deletion reached Postgres' });
    expect((await row()).rows).toEqual([{ revision: 2, deleted: true, data: {} }]);
    const { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } = cache;
    if (redisUrl !== undefined) {
      const redis = new Redis(redisUrl);
      onTestFinished(async () => void (await redis.quit()));
      const entry = `${prefix ?? ''}doc:shop:prod:tenant-a:people:ada`;
      expect(await redis.hmget(entry, 'r', 'x', 'd')).toEqual(['2', '1', '{}']);
    }
    expect((await as(admin, GET, { s: 'people', id: 'ada' })).data).toEqual({ document: null });

    // A re-creation continues the revision numbering, and its subscriber follows without a resync.
    expect((await as(admin, CREATE, { s: 'people', id: 'ada', d: { name: 'Ada' } })).data).toEqual({ createDocument: { revision: 3, data: { name: 'Ada' } } });
    expect(await nextChange('doc')).toMatchObject({ operation: 'CREATED', revision: 3, data: { name: 'Ada' } });
  });
});

describe('per-document permissions', () => {
  async function setUp(): Promise<{ server: TestServer; as: As; admin: string }> {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const as = caller(server);
    const admin = await signHs256(ADMIN);
    await as(admin, CREATE, { s: 'boards', id: 'mine', d: { v: 1 } });
    await as(admin, CREATE, { s: 'boards', id: 'other', d: { v: 1 } });
    return { server, as, admin };
  }
  const code = (body: GraphQLResponseBody) => body.errors?.[0]?.extensions?.['code'];

  it('lets sync.{service}.doc.{id}.read read and subscribe to that document, and to no other', async () => {
    const { server, as, admin } = await setUp();
    const reader = await signHs256({ permissions: ['sync.boards.doc.mine.read'] });
    expect((await as(reader, GET, { s: 'boards', id: 'mine' })).data).toEqual({ document: { revision: 1, data: { v: 1 } } });
    expect(code(await as(reader, GET, { s: 'boards', id: 'other' }))).toBe('FORBIDDEN');
    expect(code(await as(reader, 'query { documents(service: "boards") { edges { cursor } } }'))).toBe('FORBIDDEN');
    expect(code(await as(reader, MERGE, { s: 'boards', id: 'mine', p: { v: 2 } }))).toBe('FORBIDDEN');

    const client = await openAcknowledgedSocket(server.wsUrl, reader);
    const nextChange = async (id: string) => changeOf(await client.waitForMessage((message) => message.id === id));
    subscribeDocument(client, 'mine', { s: 'boards', id: 'mine' });
    expect(await nextChange('mine')).toMatchObject({ operation: 'SNAPSHOT', revision: 1, data: { v: 1 } });
    await as(admin, MERGE, { s: 'boards', id: 'mine', p: { v: 2 } });
    expect(await nextChange('mine')).toMatchObject({ operation: 'UPDATED', revision: 2, data: { v: 2 } });

    // A refresh keeps the subscription when the new token still holds the document's permission
    // (or its service's), and stops it when it does not.
    const refresh = async (id: string, permissions: string[]) => {
      client.send({ id, type: 'subscribe', payload: { query: 'mutation($t: String!) { refreshAuth(token: $t) { stoppedSubscriptions } }', variables: { t: await signHs256({ permissions }) } } });
    };
    await refresh('r1', ['sync.boards.read']);
    expect(await client.nextMessage()).toEqual({ id: 'r1', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 0 } } } });
    expect(await client.nextMessage()).toEqual({ id: 'r1', type: 'complete' });
    await refresh('r2', ['sync.boards.doc.other.read']);
    expect(await client.nextMessage()).toMatchObject({ id: 'mine', type: 'error', payload: [{ extensions: { code: 'FORBIDDEN', reason: 'PERMISSION_REVOKED' } }] });
    expect(await client.nextMessage()).toEqual({ id: 'r2', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 1 } } } });
  });

  it('lets sync.{service}.doc.{id}.write replace, merge and delete that document, but not create it or change another', async () => {
    const { as } = await setUp();
    const writer = await signHs256({ permissions: ['sync.boards.doc.mine.write'] });
    expect((await as(writer, REPLACE, { s: 'boards', id: 'mine', d: { v: 2 } })).data).toEqual({ replaceDocument: { revision: 2, data: { v: 2 } } });
    expect((await as(writer, MERGE, { s: 'boards', id: 'mine', p: { w: 1 } })).data).toEqual({ mergeDocument: { revision: 3, data: { v: 2, w: 1 } } });
    expect(code(await as(writer, MERGE, { s: 'boards', id: 'other', p: { w: 1 } }))).toBe('FORBIDDEN');
    expect(code(await as(writer, GET, { s: 'boards', id: 'mine' }))).toBe('FORBIDDEN');
    expect((await as(writer, DELETE, { s: 'boards', id: 'mine' })).data).toEqual({ deleteDocument: { revision: 4, data: { v: 2, w: 1 } } });
    // Creating takes the service's permission, even for the id the token may change.
    const refused = await as(writer, CREATE, { s: 'boards', id: 'mine', d: { v: 3 } });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN' });
    expect(refused.errors?.[0]?.message).toContain('sync.boards.write');
  });
});
