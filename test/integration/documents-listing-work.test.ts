import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDocumentCache } from '../../src/pipeline/sync/document-cache.ts';
import { leaseId } from '../../src/pipeline/sync/document-leases.ts';
import { createTestDatabase, openTestPool, startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';

/*
 * `documents` with the Redis cache: a page costs the work of the page, however many deleted
 * documents a service has, and a listing puts nothing in the cache. Every server here runs in
 * development mode: documents live in app/env/tenant "default".
 */

const SCOPE = { app: 'default', env: 'default', tenant: 'default' };
const TOMBSTONES = 1000;

interface Page {
  edges: { node: { id: string; revision: number; data: Record<string, unknown> } }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

async function gql(server: TestServer, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  const { body } = await postGraphQL(server.graphqlUrl, { query, variables });
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body;
}

async function list(server: TestServer, service: string, first: number, after?: string | null): Promise<Page> {
  const body = await gql(
    server,
    'query($s: String!, $f: Int, $a: String) { documents(service: $s, first: $f, after: $a) { edges { node { id revision data } } pageInfo { hasNextPage endCursor } } }',
    { s: service, f: first, a: after ?? null },
  );
  return body.data?.['documents'] as Page;
}

const summary = (page: Page) => page.edges.map(({ node }) => `${node.id}@${node.revision}`);

function openRedis(url: string): Redis {
  const redis = new Redis(url);
  onTestFinished(async () => void (await redis.quit()));
  return redis;
}

/** Commands the Redis server has processed so far (the INFO call itself included). */
async function commandsProcessed(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/^total_commands_processed:(\d+)/m.exec(info)?.[1]);
}

/** Cache entries of a service's documents (locks left out). */
async function entriesOf(redis: Redis, prefix: string, service: string): Promise<string[]> {
  const keys = await redis.keys(`${prefix}doc:default:default:default:${service}:*`);
  return keys.filter((key) => !key.endsWith(':lock')).sort();
}

/** A server with the Redis cache in `durability` on a fresh database and Redis, with clients of both. */
async function startCachedServer(durability: 'sync' | 'async', env: Record<string, string> = {}) {
  const redisServer = await startPrivateRedis();
  const database = await createTestDatabase();
  const prefix = uniquePrefix();
  const server = await startTestServer({ DATABASE_URL: database.url, REDIS_URL: redisServer.url, REDIS_KEY_PREFIX: prefix, SYNC_DURABILITY: durability, ...env });
  return { server, prefix, redis: openRedis(redisServer.url), pool: openTestPool(database.url) };
}

describe.each(['sync', 'async'] as const)('documents over a service with many deleted documents (%s durability)', (durability) => {
  it('costs the work of the page — a handful of Redis commands, whatever the number of deleted documents — and caches none of them', async () => {
    const { server, prefix, redis, pool } = await startCachedServer(durability);

    for (const id of ['zz1', 'zz2', 'zz3']) await gql(server, 'mutation($id: ID) { createDocument(service: "list", id: $id, data: { v: 1 }) { revision } }', { id });
    await gql(server, 'mutation { mergeDocument(service: "list", id: "zz2", patch: { v: 2 }) { revision } }');
    // Deleted documents sorting before every live one, as an async flush leaves them: a ceiling
    // above the revision, granted to a cache lease.
    await pool.query(
      `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data, deleted, ceiling, cache_epoch)
       SELECT 'default', 'default', 'default', 'list', 'a' || lpad(n::text, 6, '0'), 2, '{}', true, 66, 'gone.lease'
         FROM generate_series(1, $1::int) AS n`,
      [TOMBSTONES],
    );
    const cachedBefore = await entriesOf(redis, prefix, 'list');

    const before = await commandsProcessed(redis);
    const first = await list(server, 'list', 2);
    const spent = (await commandsProcessed(redis)) - before;

    expect(summary(first)).toEqual(['zz1@1', 'zz2@2']);
    expect(first.pageInfo.hasNextPage).toBe(true);
    // Before, each deleted document cost a read, a lease and an install script: 3,000 and more.
    expect(spent).toBeLessThan(50);
    const second = await list(server, 'list', 2, first.pageInfo.endCursor);
    expect(summary(second)).toEqual(['zz3@1']);
    expect(second.pageInfo.hasNextPage).toBe(false);
    expect(second.edges[0]?.node.data).toEqual({ v: 1 });
    // The listing put no deleted document in the cache.
    expect(await entriesOf(redis, prefix, 'list')).toEqual(cachedBefore);
  });
});

describe('documents with the cache ahead of the database (async durability)', () => {
  it('lists what the cache acknowledged: a re-creation the database has not seen, not a deletion it has not seen, and a document moved up after a lost cache', async () => {
    // No sweep during the test: the dirty entries below stay unflushed.
    const { server, prefix, redis, pool } = await startCachedServer('async', { SYNC_SWEEP_INTERVAL_MS: '600000' });
    const cache = createDocumentCache({ redis, keyPrefix: prefix, ttlMs: 60_000 });
    const lease = await cache.lease();
    await pool.query(
      `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data, deleted, ceiling, cache_epoch) VALUES
         ('default', 'default', 'default', 'ahead', 'back', 2, '{"old": true}', true, 66, $1),
         ('default', 'default', 'default', 'ahead', 'gone', 1, '{"g": 1}', false, 65, $1),
         ('default', 'default', 'default', 'ahead', 'moved', 5, '{"m": 5}', false, 20, 'lost.lease'),
         ('default', 'default', 'default', 'ahead', 'plain', 1, '{"p": 1}', false, 65, $1)`,
      [leaseId(lease)],
    );
    const at = new Date('2024-01-01T00:00:00Z');
    const dirty = async (id: string, revision: number, deleted: boolean, data: Record<string, number>) => {
      const entry = { state: { revision, data, deleted, createdAt: at, updatedAt: at }, ceiling: 66, lease: lease.generation, flushed: revision - 1 };
      expect(await cache.install({ scope: SCOPE, service: 'ahead', id }, lease.epoch, undefined, entry)).toBe('ok');
    };
    // Re-created in the cache over a deletion the database has; deleted in the cache only.
    await dirty('back', 3, false, { n: 3 });
    await dirty('gone', 2, true, {});

    const page = await list(server, 'ahead', 10);
    expect(summary(page)).toEqual(['back@3', 'moved@21', 'plain@1']);
    expect(page.edges[0]?.node.data).toEqual({ n: 3 });
    expect(page.edges[1]?.node.data).toEqual({ m: 5 });
    // A read agrees with the listing on the document moved above its ceiling.
    const moved = await gql(server, 'query { document(service: "ahead", id: "moved") { revision data } }');
    expect(moved.data?.['document']).toEqual({ revision: 21, data: { m: 5 } });
    // One page at a time, the same documents.
    const one = await list(server, 'ahead', 1);
    const two = await list(server, 'ahead', 1, one.pageInfo.endCursor);
    const three = await list(server, 'ahead', 1, two.pageInfo.endCursor);
    expect([...summary(one), ...summary(two), ...summary(three)]).toEqual(['back@3', 'moved@21', 'plain@1']);
    expect(three.pageInfo.hasNextPage).toBe(false);
  });
});
