import { Redis } from 'ioredis';
import type pg from 'pg';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { UNFLUSHED_REVISIONS_LIMIT } from '../../src/pipeline/sync/cached-documents.ts';
import type { PostgresInstance } from '../helpers/postgres.ts';
import { createTestDatabase, startPrivatePostgres, startPrivateRedis, testRedisUrl, uniqueName, uniquePrefix, openTestPool, withClient } from '../helpers/services.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

/*
 * The Redis hot cache in front of Postgres: misses, expiry of dirty documents, Redis crashes in
 * both durability modes, restarts. Every server here runs in development mode, so documents live
 * in app/env/tenant "default".
 */

interface Doc {
  revision: number;
  data: Record<string, unknown>;
}

async function gql(server: TestServer, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables })).body;
}

async function read(server: TestServer, service: string, id: string): Promise<Doc | null> {
  const body = await gql(server, 'query($s: String!, $id: ID!) { document(service: $s, id: $id) { revision data } }', { s: service, id });
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data?.['document'] as Doc | null;
}

async function write(server: TestServer, mutation: 'create' | 'merge', service: string, id: string, data: unknown, expectedRevision?: number): Promise<Doc> {
  const body =
    mutation === 'create'
      ? await gql(server, 'mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { revision data } }', { s: service, id, d: data })
      : await gql(server, 'mutation($s: String!, $id: ID!, $p: JSON!, $r: Int) { mergeDocument(service: $s, id: $id, patch: $p, expectedRevision: $r) { revision data } }', {
          s: service,
          id,
          p: data,
          r: expectedRevision,
        });
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return Object.values(body.data ?? {})[0] as Doc;
}

function openPool(url: string): pg.Pool {
  return openTestPool(url);
}

function openRedis(url: string): Redis {
  const redis = new Redis(url);
  onTestFinished(async () => void (await redis.quit()));
  return redis;
}

async function stored(pool: pg.Pool, service: string, id: string): Promise<(Doc & { deleted: boolean }) | undefined> {
  const { rows } = await pool.query<Doc & { deleted: boolean }>(
    'SELECT revision, data, deleted FROM sync_documents WHERE tenant = $1 AND service = $2 AND id = $3',
    ['default', service, id],
  );
  return rows[0];
}

const entryKey = (prefix: string, service: string, id: string) => `${prefix}doc:default:default:default:${service}:${id}`;

/** A Postgres cluster of the file's own, for the tests that stop it under their server (one at a time). */
let cluster: PostgresInstance;
beforeAll(async () => {
  cluster = await startPrivatePostgres({ autoDispose: false });
  return () => cluster.dispose();
});

/**
 * A database of the test's own in the file's private cluster, which the test may stop and start
 * (`stop`/`start` are the cluster's): one cluster's start for the file, not one a test. Once the
 * test has ended (its server disposed: registered before it), the cluster is started again if the
 * test left it stopped, and the database dropped.
 */
async function outagePostgres(): Promise<Pick<PostgresInstance, 'url' | 'stop' | 'start'>> {
  const name = uniqueName();
  await withClient(cluster.url, (client) => client.query(`CREATE DATABASE ${name}`));
  onTestFinished(async () => {
    await cluster.start();
    await withClient(cluster.url, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });
  const url = new URL(cluster.url);
  url.pathname = `/${name}`;
  return { url: url.toString(), stop: (mode) => cluster.stop(mode), start: () => cluster.start() };
}

describe('document cache', () => {
  it('loads a missing document from Postgres at its stored revision, and continues from it', async () => {
    const database = await createTestDatabase({ migrated: true });
    const prefix = uniquePrefix();
    const server = await startTestServer({ DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, SYNC_DURABILITY: 'async' });
    const pool = openPool(database.url);
    const redis = openRedis(testRedisUrl());

    await write(server, 'create', 'miss', 'a', { v: 1 });
    await write(server, 'merge', 'miss', 'a', { v: 2 });
    await waitFor(async () => (await stored(pool, 'miss', 'a'))?.revision === 2, { message: 'revision 2 flushed to Postgres' });
    // What the TTL would do to a clean entry.
    expect(await redis.del(entryKey(prefix, 'miss', 'a'))).toBe(1);
    // A document Postgres has and this cache has never seen.
    await pool.query(`INSERT INTO sync_documents (app, env, tenant, service, id, revision, data) VALUES ('default', 'default', 'default', 'miss', 'b', 7, '{"w": 7}')`);

    expect(await read(server, 'miss', 'a')).toEqual({ revision: 2, data: { v: 2 } });
    expect(await read(server, 'miss', 'b')).toEqual({ revision: 7, data: { w: 7 } });
    expect(await write(server, 'merge', 'miss', 'a', { v: 3 }, 2)).toEqual({ revision: 3, data: { v: 3 } });
    expect(await write(server, 'merge', 'miss', 'b', { w: 8 }, 7)).toEqual({ revision: 8, data: { w: 8 } });
    expect(await read(server, 'miss', 'nothing')).toBeNull();
    expect(await redis.exists(entryKey(prefix, 'miss', 'nothing'))).toBe(0);
  });

  it('keeps dirty documents past their TTL until Postgres has them, then lets them expire; nothing is lost', async () => {
    const postgres = await outagePostgres();
    const prefix = uniquePrefix();
    const server = await startTestServer({
      DATABASE_URL: postgres.url,
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: prefix,
      SYNC_DURABILITY: 'async',
      SYNC_DOC_TTL_SECONDS: '1',
      SYNC_SWEEP_INTERVAL_MS: '200',
    });
    const redis = openRedis(testRedisUrl());
    await write(server, 'create', 'ttl', 'clean', { v: 1 });
    await write(server, 'create', 'ttl', 'dirty', { v: 1 });
    await waitFor(async () => (await redis.zcard(`${prefix}doc:dirty`)) === 0, { message: 'both creations flushed' });

    await postgres.stop();
    // Acknowledged by the cache while Postgres is down (async durability).
    expect(await write(server, 'merge', 'ttl', 'dirty', { v: 2 })).toEqual({ revision: 2, data: { v: 2 } });
    expect(await write(server, 'merge', 'ttl', 'dirty', { v: 3 })).toEqual({ revision: 3, data: { v: 3 } });
    // The clean entry expires after its TTL; the dirty one is still there without a TTL.
    await waitFor(async () => (await redis.exists(entryKey(prefix, 'ttl', 'clean'))) === 0, { message: 'the clean entry expired' });
    expect(await redis.pttl(entryKey(prefix, 'ttl', 'dirty'))).toBe(-1);
    expect(await redis.zcard(`${prefix}doc:dirty`)).toBe(1);

    await postgres.start();
    const pool = openPool(postgres.url);
    await waitFor(async () => (await redis.zcard(`${prefix}doc:dirty`)) === 0, { timeoutMs: 20_000, message: 'the sweep flushed the dirty document' });
    expect(await stored(pool, 'ttl', 'dirty')).toEqual({ revision: 3, data: { v: 3 }, deleted: false });
    await waitFor(async () => (await redis.exists(entryKey(prefix, 'ttl', 'dirty'))) === 0, { message: 'the flushed entry expired' });
    expect(await read(server, 'ttl', 'dirty')).toEqual({ revision: 3, data: { v: 3 } });
    expect(await read(server, 'ttl', 'clean')).toEqual({ revision: 1, data: { v: 1 } });
  });

  it('answers UNAVAILABLE for a creation while Postgres is down, and keeps at most the stated number of unflushed revisions', async () => {
    const postgres = await outagePostgres();
    const server = await startTestServer({ DATABASE_URL: postgres.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' });
    await write(server, 'create', 'bound', 'd', { n: 0 });
    const pool = openPool(postgres.url);
    await waitFor(async () => (await stored(pool, 'bound', 'd'))?.revision === 1, { message: 'creation flushed' });
    await postgres.stop();

    const created = await gql(server, 'mutation { createDocument(service: "bound", id: "new", data: {}) { revision } }');
    expect(created.errors?.[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE' });
    // Revision 1 is flushed with a ceiling of 1 + limit: that many more are accepted, then none.
    let accepted = 0;
    for (let n = 1; n <= UNFLUSHED_REVISIONS_LIMIT + 5; n += 1) {
      const body = await gql(server, 'mutation($p: JSON!) { mergeDocument(service: "bound", id: "d", patch: $p) { revision } }', { p: { n } });
      if (body.errors) {
        expect(body.errors[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE' });
        break;
      }
      accepted += 1;
    }
    expect(accepted).toBe(UNFLUSHED_REVISIONS_LIMIT);
    expect(await read(server, 'bound', 'd')).toEqual({ revision: 1 + UNFLUSHED_REVISIONS_LIMIT, data: { n: UNFLUSHED_REVISIONS_LIMIT } });
  });

  it('keeps at most the stated number of unflushed revisions while Postgres is up but refuses the document\'s changes', async () => {
    const database = await createTestDatabase({ migrated: true });
    // No sweep: only the write path flushes.
    const server = await startTestServer({
      DATABASE_URL: database.url,
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: uniquePrefix(),
      SYNC_DURABILITY: 'async',
      SYNC_SWEEP_INTERVAL_MS: '600000',
    });
    const pool = openPool(database.url);
    await write(server, 'create', 'bound', 'd', { n: 0 });
    await waitFor(async () => (await stored(pool, 'bound', 'd'))?.revision === 1, { message: 'creation flushed' });
    // From now on, each flush of the document fails: the cache gets ahead of Postgres.
    await pool.query(`
      CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.data ? 'refuse' THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON sync_documents FOR EACH ROW EXECUTE FUNCTION refuse_marked();`);

    // Postgres grants the limit past the revision it has, not past the cache's.
    let accepted = 0;
    for (let n = 1; n <= UNFLUSHED_REVISIONS_LIMIT + 5; n += 1) {
      const body = await gql(server, 'mutation($p: JSON!) { mergeDocument(service: "bound", id: "d", patch: $p) { revision } }', { p: { refuse: true, n } });
      if (body.errors) {
        expect(body.errors[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE' });
        break;
      }
      accepted += 1;
    }
    expect(accepted).toBe(UNFLUSHED_REVISIONS_LIMIT);
    expect(await stored(pool, 'bound', 'd')).toMatchObject({ revision: 1 });
    expect(await read(server, 'bound', 'd')).toEqual({ revision: 1 + UNFLUSHED_REVISIONS_LIMIT, data: { n: UNFLUSHED_REVISIONS_LIMIT, refuse: true } });
  });
});

describe.each(['sync', 'async'] as const)('a Redis crash after acknowledged writes (%s durability)', (durability) => {
  it(durability === 'sync' ? 'loses nothing and keeps every revision as acknowledged' : 'loses at most the stated window, and revisions never go backwards', async () => {
    const redis = await startPrivateRedis();
    const database = await createTestDatabase({ migrated: true });
    const server = await startTestServer({ DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: durability });
    const pool = openPool(database.url);

    const documents = ['d0', 'd1', 'd2', 'd3', 'd4'];
    const writes = 30;
    const acknowledged = new Map<string, Doc>();
    await Promise.all(
      documents.map(async (id) => {
        acknowledged.set(id, await write(server, 'create', 'crash', id, { n: 0 }));
        for (let n = 1; n < writes; n += 1) acknowledged.set(id, await write(server, 'merge', 'crash', id, { n }));
      }),
    );
    await redis.stop('crash');
    await redis.start();
    // Reconnected to Redis (in sync durability reads are answered from Postgres meanwhile, so a
    // read alone does not say the cache is back; writes need it).
    await waitFor(
      async () => {
        const ready = (await fetch(`${server.url}/ready`)).status === 200;
        const body = await gql(server, '{ document(service: "crash", id: "d0") { revision } }');
        return ready && body.errors === undefined;
      },
      { timeoutMs: 20_000, message: 'the server is ready and reads documents again' },
    );

    for (const id of documents) {
      const before = acknowledged.get(id)!;
      expect(before).toEqual({ revision: writes, data: { n: writes - 1 } });
      const after = (await read(server, 'crash', id))!;
      const n = after.data['n'] as number;
      if (durability === 'sync') {
        // Postgres has every acknowledged revision: the document is exactly as acknowledged.
        expect(after.revision).toBe(before.revision);
        expect(after.data).toEqual(before.data);
        expect(await stored(pool, 'crash', id)).toMatchObject({ data: before.data });
      } else {
        // Never backwards, and never the same revision for other data: the lost cache may have
        // acknowledged revisions Postgres lacks.
        expect(after.revision).toBeGreaterThan(before.revision);
        expect(n).toBeLessThanOrEqual(writes - 1);
        expect(writes - 1 - n).toBeLessThanOrEqual(UNFLUSHED_REVISIONS_LIMIT);
      }
      // Writing continues above it.
      expect(await write(server, 'merge', 'crash', id, { n: 100 }, after.revision)).toEqual({ revision: after.revision + 1, data: { n: 100 } });
    }
  });
});

describe('documents across server restarts with the cache', () => {
  it('keeps every document and its revision when the server restarts, on the same Redis or on a new, empty one', async () => {
    const database = await createTestDatabase({ migrated: true });
    const prefix = uniquePrefix();
    const env = { DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), SYNC_DURABILITY: 'async' };
    const first = await startTestServer({ ...env, REDIS_KEY_PREFIX: prefix });
    for (const id of ['a', 'b']) {
      await write(first, 'create', 'restart', id, { v: 0 });
      for (let v = 1; v <= 5; v += 1) await write(first, 'merge', 'restart', id, { v });
    }
    await first.dispose();
    // Shutdown flushed what was dirty.
    const pool = openPool(database.url);
    expect(await stored(pool, 'restart', 'a')).toEqual({ revision: 6, data: { v: 5 }, deleted: false });

    const second = await startTestServer({ ...env, REDIS_KEY_PREFIX: prefix });
    expect(await read(second, 'restart', 'a')).toEqual({ revision: 6, data: { v: 5 } });
    expect(await write(second, 'merge', 'restart', 'a', { v: 6 }, 6)).toEqual({ revision: 7, data: { v: 6 } });
    await second.dispose();

    // Another, empty Redis: both shutdowns were graceful, so Postgres has every revision the old
    // cache acknowledged, and the documents carry on from there.
    const third = await startTestServer({ ...env, REDIS_KEY_PREFIX: uniquePrefix() });
    expect(await read(third, 'restart', 'b')).toEqual({ revision: 6, data: { v: 5 } });
    expect(await read(third, 'restart', 'a')).toEqual({ revision: 7, data: { v: 6 } });
    expect(await write(third, 'merge', 'restart', 'b', { v: 6 }, 6)).toEqual({ revision: 7, data: { v: 6 } });
  });
});

describe.each(['sync', 'async'] as const)('a document after a graceful restart on an emptied Redis (%s durability)', (durability) => {
  it('answers the revision it was acknowledged at, and takes a write that expects it', async () => {
    const redis = await startPrivateRedis();
    const database = await createTestDatabase({ migrated: true });
    const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: durability };
    const first = await startTestServer(env);
    await write(first, 'create', 'empty', 'd', { v: 1 });
    expect(await write(first, 'merge', 'empty', 'd', { v: 2 })).toEqual({ revision: 2, data: { v: 2 } });
    await first.dispose();
    // Without persistence, the restarted Redis is empty.
    await redis.stop();
    await redis.start();

    const second = await startTestServer(env);
    expect(await read(second, 'empty', 'd')).toEqual({ revision: 2, data: { v: 2 } });
    expect(await write(second, 'merge', 'empty', 'd', { v: 3 }, 2)).toEqual({ revision: 3, data: { v: 3 } });
  });
});

describe('a Redis crash in async durability after a graceful restart', () => {
  it('moves up only the documents written since: one that was only read keeps its revision', async () => {
    const redis = await startPrivateRedis();
    const database = await createTestDatabase({ migrated: true });
    const pool = openPool(database.url);
    const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' };
    const first = await startTestServer(env);
    await write(first, 'create', 'since', 'idle', { v: 1 });
    await write(first, 'create', 'since', 'busy', { v: 1 });
    await first.dispose();

    const second = await startTestServer(env);
    expect(await read(second, 'since', 'idle')).toEqual({ revision: 1, data: { v: 1 } });
    expect(await write(second, 'merge', 'since', 'busy', { v: 2 }, 1)).toEqual({ revision: 2, data: { v: 2 } });
    await waitFor(async () => (await stored(pool, 'since', 'busy'))?.revision === 2, { message: 'revision 2 flushed' });
    await redis.stop('crash');
    await redis.start();
    await waitFor(async () => (await gql(second, '{ document(service: "since", id: "idle") { revision } }')).errors === undefined, {
      timeoutMs: 20_000,
      message: 'the server reads documents again',
    });

    expect(await read(second, 'since', 'idle')).toEqual({ revision: 1, data: { v: 1 } });
    // Postgres cannot tell whether the lost cache acknowledged more of it: above anything it could have.
    const busy = (await read(second, 'since', 'busy'))!;
    expect(busy.data).toEqual({ v: 2 });
    expect(busy.revision).toBeGreaterThan(2);
  });
});

describe('a change answered UNAVAILABLE in sync durability', () => {
  it('is published only once Postgres has committed it', async () => {
    const postgres = await outagePostgres();
    const pool = openPool(postgres.url);
    // No sweep during the test: only the write path may flush.
    const server = await startTestServer({
      DATABASE_URL: postgres.url,
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: uniquePrefix(),
      SYNC_DURABILITY: 'sync',
      SYNC_SWEEP_INTERVAL_MS: '600000',
    });
    await write(server, 'create', 'commit', 'd', { v: 1 });
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'doc', type: 'subscribe', payload: { query: 'subscription { document(service: "commit", id: "d") { revision data } }' } });
    expect(await client.nextMessage()).toMatchObject({ type: 'next', payload: { data: { document: { revision: 1 } } } });

    await postgres.stop();
    const failed = await gql(server, 'mutation { mergeDocument(service: "commit", id: "d", patch: { v: 2 }) { revision } }');
    expect(failed.errors?.[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE', revision: 2 });
    const event = client.nextMessage();
    await postgres.start();

    expect(await event).toMatchObject({ type: 'next', payload: { data: { document: { revision: 2, data: { v: 2 } } } } });
    // When a subscriber sees revision 2, Postgres has it.
    expect(await stored(pool, 'commit', 'd')).toEqual({ revision: 2, data: { v: 2 }, deleted: false });
  });
});

describe.each(['sync', 'async'] as const)('reading a document changed while Postgres is down (%s durability)', (durability) => {
  const behaviour =
    durability === 'sync'
      ? 'shows the revision Postgres has, not the change answered UNAVAILABLE, to readers and new subscribers until Postgres has it'
      : 'shows the change the cache acknowledged to readers and new subscribers';
  it(behaviour, async () => {
    const postgres = await outagePostgres();
    const prefix = uniquePrefix();
    // No sweep during the test: only the write path may flush.
    const server = await startTestServer({
      DATABASE_URL: postgres.url,
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: prefix,
      SYNC_DURABILITY: durability,
      SYNC_SWEEP_INTERVAL_MS: '600000',
    });
    const pool = openPool(postgres.url);
    const redis = openRedis(testRedisUrl());
    await write(server, 'create', 'outage', 'd', { v: 1 });
    await waitFor(async () => (await stored(pool, 'outage', 'd'))?.revision === 1, { message: 'creation in Postgres' });

    await postgres.stop();
    const body = await gql(server, 'mutation { mergeDocument(service: "outage", id: "d", patch: { v: 2 }) { revision data } }');
    if (durability === 'sync') expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE', revision: 2 });
    else expect(body.data).toEqual({ mergeDocument: { revision: 2, data: { v: 2 } } });
    // Either way the cache holds revision 2.
    expect(await redis.hget(entryKey(prefix, 'outage', 'd'), 'r')).toBe('2');

    // A Redis that lost revision 2 now would give that number to the next change: in sync
    // durability nobody may have seen it.
    const seen = durability === 'sync' ? { revision: 1, data: { v: 1 } } : { revision: 2, data: { v: 2 } };
    expect(await read(server, 'outage', 'd')).toEqual(seen);
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'doc', type: 'subscribe', payload: { query: 'subscription { document(service: "outage", id: "d") { operation revision data } }' } });
    expect(await client.nextMessage()).toMatchObject({ type: 'next', payload: { data: { document: { operation: 'SNAPSHOT', ...seen } } } });
    if (durability === 'async') return;

    // Postgres back: the change is committed, then published; the subscriber goes on from revision 1.
    const event = client.nextMessage();
    await postgres.start();
    expect(await event).toMatchObject({ type: 'next', payload: { data: { document: { operation: 'UPDATED', revision: 2, data: { v: 2 } } } } });
    expect(await read(server, 'outage', 'd')).toEqual({ revision: 2, data: { v: 2 } });
  });
});

describe('documents across a restart of a persistent Redis', () => {
  it('keeps every acknowledged write and never moves a revision backwards', async () => {
    const redis = await startPrivateRedis({ persistent: true });
    const database = await createTestDatabase({ migrated: true });
    const server = await startTestServer({ DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' });
    let last = await write(server, 'create', 'persist', 'p', { n: 0 });
    for (let n = 1; n <= 10; n += 1) last = await write(server, 'merge', 'persist', 'p', { n });
    await redis.stop();
    await redis.start();
    await waitFor(async () => (await gql(server, '{ document(service: "persist", id: "p") { revision } }')).errors === undefined, {
      timeoutMs: 20_000,
      message: 'the server reads documents again',
    });
    const after = (await read(server, 'persist', 'p'))!;
    expect(after.data).toEqual({ n: 10 });
    expect(after.revision).toBeGreaterThanOrEqual(last.revision);
    expect(await write(server, 'merge', 'persist', 'p', { n: 11 }, after.revision)).toEqual({ revision: after.revision + 1, data: { n: 11 } });
  });
});

describe('a document written through several instances', () => {
  it('publishes its changes in revision order whichever instance writes them: subscribers of both see every revision once, in order', async () => {
    const database = await createTestDatabase({ migrated: true });
    const env = { DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' };
    // The second instance reaches Redis over a slow link: between its revision check and its
    // publish, the first instance has time to write and publish the next revision — unless the
    // instances take turns.
    const slowLink = await startTcpProxy(Number(new URL(testRedisUrl()).port), { replyDelayMs: 2 });
    const servers = [await startTestServer(env), await startTestServer({ ...env, REDIS_URL: `redis://127.0.0.1:${slowLink.port}` })];
    await write(servers[0]!, 'create', 'shared', 'board', { n: 0 });
    const subscribers = await Promise.all(
      servers.map(async (server) => {
        const client = await openAcknowledgedSocket(server.wsUrl);
        client.send({
          id: 'doc',
          type: 'subscribe',
          payload: { query: 'subscription { document(service: "shared", id: "board") { operation revision } }' },
        });
        const snapshot = await client.nextMessage();
        expect(snapshot).toMatchObject({ type: 'next', payload: { data: { document: { operation: 'SNAPSHOT', revision: 1 } } } });
        return client;
      }),
    );

    // Six writers, three per instance, merging at the same time without expectedRevision.
    const perWriter = 20;
    await Promise.all(
      [0, 1, 2, 3, 4, 5].map(async (writer) => {
        for (let i = 0; i < perWriter; i += 1) await write(servers[writer % 2]!, 'merge', 'shared', 'board', { [`w${writer}`]: i });
      }),
    );
    const total = 6 * perWriter;
    const expected = Array.from({ length: total }, (_unused, index) => index + 2);
    for (const client of subscribers) {
      const revisions: number[] = [];
      while (revisions.length < total) {
        const message = await client.nextMessage();
        expect(message, JSON.stringify(message)).toMatchObject({ type: 'next' });
        revisions.push((message.payload as { data: { document: { revision: number } } }).data.document.revision);
      }
      expect(revisions).toEqual(expected);
    }
    expect(await read(servers[1]!, 'shared', 'board')).toMatchObject({ revision: total + 1, data: { w0: perWriter - 1, w3: perWriter - 1 } });
  });
});
