import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDocumentCache } from '../../src/pipeline/sync/document-cache.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

interface Change {
  operation: string;
  revision: number;
  data: Record<string, unknown> | null;
  diff: unknown;
}

async function nextChange(client: RawSocket): Promise<Change> {
  const message = await client.nextMessage();
  expect(message, JSON.stringify(message)).toMatchObject({ type: 'next' });
  return (message.payload as { data: { document: Change } }).data.document;
}

function subscribe(client: RawSocket, service: string, id: string, returnMode = 'FULL'): void {
  client.send({
    id: 'doc',
    type: 'subscribe',
    payload: {
      query: `subscription($s: String!, $id: ID!, $m: ReturnMode) { document(service: $s, id: $id, returnMode: $m) { operation revision data diff } }`,
      variables: { s: service, id, m: returnMode },
    },
  });
}

const merge = (server: TestServer, service: string, id: string, patch: unknown) =>
  postGraphQL(server.graphqlUrl, {
    query: 'mutation($s: String!, $id: ID!, $p: JSON!) { mergeDocument(service: $s, id: $id, patch: $p) { revision } }',
    variables: { s: service, id, p: patch },
  });

describe.each(['memory', 'redis', 'redis async'])('live documents (%s)', (mode) => {
  const env = (): Record<string, string> =>
    mode === 'memory'
      ? {}
      : { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: mode === 'redis' ? 'sync' : 'async' };

  it('sends the snapshot at revision R, then exactly the changes after R, in order, while writes keep coming', async () => {
    const server = await startTestServer(env());
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "board", id: "b1", data: { n: 0 }) { revision } }' });
    const total = 60;
    let subscribed: Promise<RawSocket> | undefined;
    // Subscribe in the middle of a run of sequential writes: the seam falls between them.
    for (let n = 1; n <= total; n += 1) {
      expect((await merge(server, 'board', 'b1', { n })).body.errors).toBeUndefined();
      if (n === 20) {
        subscribed = openAcknowledgedSocket(server.wsUrl).then((client) => {
          subscribe(client, 'board', 'b1');
          return client;
        });
      }
    }
    const client = await subscribed!;
    const snapshot = await nextChange(client);
    expect(snapshot.operation).toBe('SNAPSHOT');
    expect(snapshot.data).toEqual({ n: snapshot.revision - 1 });
    const revisions: number[] = [];
    for (let revision = snapshot.revision + 1; revision <= total + 1; revision += 1) {
      const change = await nextChange(client);
      expect(change).toMatchObject({ operation: 'UPDATED', data: { n: change.revision - 1 } });
      revisions.push(change.revision);
    }
    expect(revisions).toEqual(Array.from({ length: total + 1 - snapshot.revision }, (_unused, index) => snapshot.revision + 1 + index));
    expect(client.pending).toEqual([]);
    // Barrier: one more write, whose change must be the very next message — a late duplicate or
    // stray change would arrive before it.
    expect((await merge(server, 'board', 'b1', { n: total + 1 })).body.errors).toBeUndefined();
    expect(await nextChange(client)).toMatchObject({ operation: 'UPDATED', revision: total + 2, data: { n: total + 1 } });
  });

  it('starts a document that does not exist yet with an empty snapshot, then its creation', async () => {
    const server = await startTestServer(env());
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribe(client, 'board', 'later');
    expect(await nextChange(client)).toEqual({ operation: 'SNAPSHOT', revision: 0, data: null, diff: null });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "board", id: "later", data: { x: 1 }) { revision } }' });
    expect(await nextChange(client)).toEqual({ operation: 'CREATED', revision: 1, data: { x: 1 }, diff: null });
    await merge(server, 'board', 'later', { x: 2 });
    expect(await nextChange(client)).toEqual({ operation: 'UPDATED', revision: 2, data: { x: 2 }, diff: [{ op: 'replace', path: '/x', value: 2 }] });
  });

  it("keeps the snapshot's data with returnMode DIFF (the base the diffs apply to), then sends diffs only", async () => {
    const server = await startTestServer(env());
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "board", id: "d", data: { x: 1 }) { revision } }' });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribe(client, 'board', 'd', 'DIFF');
    expect(await nextChange(client)).toEqual({ operation: 'SNAPSHOT', revision: 1, data: { x: 1 }, diff: null });
    await merge(server, 'board', 'd', { x: 2 });
    expect(await nextChange(client)).toEqual({ operation: 'UPDATED', revision: 2, data: null, diff: [{ op: 'replace', path: '/x', value: 2 }] });
  });

  it("strips data and diff with returnMode MINIMAL (notify only), the snapshot's too", async () => {
    const server = await startTestServer(env());
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "board", id: "m", data: { x: 1 }) { revision } }' });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribe(client, 'board', 'm', 'MINIMAL');
    expect(await nextChange(client)).toEqual({ operation: 'SNAPSHOT', revision: 1, data: null, diff: null });
    await merge(server, 'board', 'm', { x: 2 });
    expect(await nextChange(client)).toEqual({ operation: 'UPDATED', revision: 2, data: null, diff: null });
  });
});

describe('live document permissions', () => {
  it('stays silent for a caller without sync.{service}.read', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'] });
    const stranger = await signHs256({ permissions: ['sync.other.read'] });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "board", id: "s", data: {}) { revision } }' }, { authorization: `Bearer ${admin}` });
    const client = await openAcknowledgedSocket(server.wsUrl, stranger);
    subscribe(client, 'board', 's');
    await postGraphQL(server.graphqlUrl, { query: 'mutation { mergeDocument(service: "board", id: "s", patch: { x: 1 }) { revision } }' }, { authorization: `Bearer ${admin}` });
    // A watcher allowed to read sees the change; then a ping on the silent socket proves nothing reached it.
    const watcher = await openAcknowledgedSocket(server.wsUrl, admin);
    subscribe(watcher, 'board', 's');
    expect((await nextChange(watcher)).revision).toBe(2);
    client.send({ type: 'ping' });
    expect(await client.nextMessage()).toEqual({ type: 'pong' });

    // Barrier: on the same socket, a document the caller may read. Its change, written after
    // another change of the forbidden one, must be the next message: nothing may come before it.
    client.send({
      id: 'mark',
      type: 'subscribe',
      payload: { query: 'subscription { document(service: "other", id: "m") { operation revision } }' },
    });
    expect(await client.nextMessage()).toEqual({ id: 'mark', type: 'next', payload: { data: { document: { operation: 'SNAPSHOT', revision: 0 } } } });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { mergeDocument(service: "board", id: "s", patch: { x: 2 }) { revision } }' }, { authorization: `Bearer ${admin}` });
    expect((await nextChange(watcher)).revision).toBe(3);
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "other", id: "m", data: {}) { revision } }' }, { authorization: `Bearer ${admin}` });
    expect(await client.nextMessage()).toEqual({ id: 'mark', type: 'next', payload: { data: { document: { operation: 'CREATED', revision: 1 } } } });
  });
});

describe('live documents with a gap', () => {
  it('ends the subscription with RESYNC_REQUIRED when a revision was never published, never a silent gap', async () => {
    const keyPrefix = uniquePrefix();
    const server = await startTestServer({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: keyPrefix });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "board", id: "g", data: { n: 0 }) { revision } }' });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribe(client, 'board', 'g');
    expect((await nextChange(client)).revision).toBe(1);

    // Another instance saved revision 2 in the shared cache and died before publishing it.
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    const cache = createDocumentCache({ redis, keyPrefix, ttlMs: 60_000 });
    const entryKey = cache.entryKey({ scope: { app: 'default', env: 'default', tenant: 'default' }, service: 'board', id: 'g' });
    const read = await cache.read(entryKey);
    if (read.status !== 'hit') throw new Error(`expected the document in the cache, got ${read.status}`);
    const { state, epoch } = read.entry;
    expect(await cache.write(entryKey, epoch, 1, { ...state, revision: 2, data: { n: 1 } })).toBe('ok');

    // This instance continues from revision 2 and publishes revision 3.
    expect((await merge(server, 'board', 'g', { n: 2 })).body.data).toEqual({ mergeDocument: { revision: 3 } });
    const message = await client.nextMessage();
    expect(message).toMatchObject({ id: 'doc', type: 'error', payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] });
  });
});
