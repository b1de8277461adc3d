/**
 * A `documents` page is bounded in bytes of its documents' data as well as in count: 500 documents
 * of 250 KB made one 125 MB answer, built whole and held for as long as a client that does not
 * read kept its socket open. It now ends once its data reaches 4 MiB (README, "Sync documents"),
 * with `hasNextPage` and the cursor of a count-limited page. And a page that does not select
 * `data` reads none — from the database or the cache — which a loop of id-only pages did (every
 * row's data, through the pool every tenant shares).
 *
 * What the server reads is observed from outside: the bytes it receives from Postgres and Redis,
 * through proxies of the test's own. The servers run in development mode: one principal, documents
 * in app/env/tenant "default".
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** The page's cap on its documents' data, in bytes of JSON, as README documents it. */
const PAGE_DATA_BYTES = 4 * 1024 * 1024;

interface Page {
  edges: { cursor: string; node: { id: string; revision: number; data?: { i: number; text: string } } }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** A loopback proxy to `url`'s server, counting the bytes that server sends back. */
async function countingProxy(url: string): Promise<{ url: string; received: () => number }> {
  const target = new URL(url);
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', close);
      socket.on('close', () => (sockets.delete(socket), close()));
    }
    upstream.on('data', (chunk: Buffer) => void (received += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // Registered before the server that uses it: torn down after it.
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as AddressInfo).port);
  return { url: proxied.toString(), received: () => received };
}

/** The database alone, and the Redis cache in front of it (no sweep: nothing is flushed behind the test's back). */
const MODES = {
  database: false,
  'redis cache, sync': 'sync',
  'redis cache, async': 'async',
} as const;

async function startServer(durability: false | 'sync' | 'async'): Promise<{ server: TestServer; databaseUrl: string; received: () => number }> {
  const database = await createTestDatabase({ migrated: true });
  const postgres = await countingProxy(database.url);
  const redis = durability === false ? undefined : await countingProxy(testRedisUrl());
  const server = await startTestServer({
    DATABASE_URL: postgres.url,
    ...(redis && { REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: durability || 'sync', SYNC_SWEEP_INTERVAL_MS: '600000' }),
  });
  return { server, databaseUrl: database.url, received: () => postgres.received() + (redis?.received() ?? 0) };
}

async function gql<T>(server: TestServer, query: string, variables: Record<string, unknown>): Promise<T> {
  const { body } = await postGraphQL(server.graphqlUrl, { query, variables });
  if (body.errors) throw new Error(JSON.stringify(body.errors).slice(0, 500));
  return body.data as T;
}

/** Documents `d00`, `d01`… of `service`, each `{ i, text }` with `bytes` characters of text. */
async function createDocuments(server: TestServer, service: string, count: number, bytes: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `d${String(i).padStart(2, '0')}`);
  for (const [i, id] of ids.entries()) {
    await gql(server, 'mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { revision } }', {
      s: service,
      id,
      d: { i, text: String(i % 10).repeat(bytes) },
    });
  }
  return ids;
}

/** A page of up to 500 documents, their `fields` selected (`fragments` after the query). */
async function page(server: TestServer, service: string, fields: string, after: string | null = null, fragments = ''): Promise<Page> {
  const query = `query($s: String!, $a: String) { documents(service: $s, first: 500, after: $a) { edges { cursor node { ${fields} } } pageInfo { hasNextPage endCursor } } } ${fragments}`;
  return (await gql<{ documents: Page }>(server, query, { s: service, a: after })).documents;
}

const dataBytes = (current: Page) => current.edges.reduce((sum, { node }) => sum + Buffer.byteLength(JSON.stringify(node.data)), 0);

describe.each(Object.entries(MODES))('documents pages (%s)', (_mode, durability) => {
  it('ends a page once its documents hold 4 MiB of data, and paging on gives every document once, in order', async () => {
    const { server } = await startServer(durability);
    // 30 documents of ~200 KB: 6 MB, within 500 documents but not within the cap.
    const ids = await createDocuments(server, 'big', 30, 200_000);

    const pages: Page[] = [];
    let after: string | null = null;
    do {
      const current: Page = await page(server, 'big', 'id revision data', after);
      pages.push(current);
      after = current.pageInfo.endCursor;
      if (pages.length > ids.length) throw new Error('paging does not end');
    } while (pages.at(-1)!.pageInfo.hasNextPage);

    const first = pages[0]!;
    expect(first.pageInfo.hasNextPage).toBe(true);
    expect(first.edges.length).toBeLessThan(ids.length);
    expect(first.edges.length).toBeGreaterThan(0);
    for (const current of pages) expect(dataBytes(current)).toBeLessThanOrEqual(PAGE_DATA_BYTES);
    const listed = pages.flatMap((current) => current.edges.map(({ node }) => node));
    expect(listed.map(({ id }) => id)).toEqual(ids);
    // Each whole, as written.
    for (const [i, node] of listed.entries()) expect(node.data).toEqual({ i, text: String(i % 10).repeat(200_000) });
  });

  it('reads no document data from the database or the cache for a page that does not select it', async () => {
    const { server, databaseUrl, received } = await startServer(durability);
    // 10 documents of ~100 KB (1 MB).
    const ids = await createDocuments(server, 'heads', 10, 100_000);
    // Async durability flushes each write in the background, reading its entry back from Redis:
    // done once the database has every document (read past the proxy).
    const pool = openTestPool(databaseUrl);
    await waitFor(async () => (await pool.query(`SELECT 1 FROM sync_documents WHERE service = 'heads' AND revision = 1`)).rowCount === ids.length);

    let before = received();
    const heads = await page(server, 'heads', 'id revision');
    const readForHeads = received() - before;
    before = received();
    // `data` asked for through a fragment.
    const whole = await page(server, 'heads', '...Whole', null, 'fragment Whole on Document { id revision data }');
    const readForData = received() - before;

    expect(heads.edges.map(({ node }) => `${node.id}@${node.revision}`)).toEqual(ids.map((id) => `${id}@1`));
    expect(heads.pageInfo.hasNextPage).toBe(false);
    expect(whole.edges.map(({ node }) => [node.id, node.data?.text.length])).toEqual(ids.map((id) => [id, 100_000]));
    // What is observed: a page with data brings its megabyte in...
    expect(readForData).toBeGreaterThan(10 * 100_000);
    // ...a page of ids and revisions not even one document's data.
    expect(readForHeads).toBeLessThan(100_000);
  });
});
