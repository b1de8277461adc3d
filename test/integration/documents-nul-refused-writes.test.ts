/**
 * Document changes Postgres refuses for another reason than an outage, behind the Redis cache. The
 * edge refuses the values jsonb cannot store (a NUL, half a surrogate pair), so a trigger stands in
 * here for any other refusal (a constraint, a value of a newer kind): a statement error that
 * retrying cannot cure.
 *
 * Sync durability: the change is taken back — the writer is answered INTERNAL_SERVER_ERROR, not
 * UNAVAILABLE with a promise to write it later, and the document goes on from the revision
 * Postgres has (before, every later write of the document failed and a retry loop ran until
 * shutdown). Async durability: the refused document stays dirty, but the sweep writes the others
 * past it, at a graceful shutdown too.
 */
import { Redis } from 'ioredis';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { captureLogs, postGraphQL, startTestServer, type GraphQLResponseBody, type LogLine, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

async function gql(server: TestServer, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables })).body;
}

const create = (server: TestServer, id: string, data: unknown) =>
  gql(server, 'mutation($id: ID!, $d: JSON!) { createDocument(service: "s", id: $id, data: $d) { revision data } }', { id, d: data });
const merge = (server: TestServer, id: string, patch: unknown) =>
  gql(server, 'mutation($id: ID!, $p: JSON!) { mergeDocument(service: "s", id: $id, patch: $p) { revision data } }', { id, p: patch });
const read = async (server: TestServer, id: string) =>
  (await gql(server, 'query($id: ID!) { document(service: "s", id: $id) { revision data } }', { id })).data?.['document'];

/**
 * Postgres refuses to store a document whose data has a key "refuse", and every document while
 * `refuse_all` has a row (SQLSTATE 23514, check_violation: not an outage).
 */
async function refuseMarkedDocuments(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE refuse_all (x int);
    CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.data ? 'refuse' OR EXISTS (SELECT 1 FROM refuse_all) THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON sync_documents FOR EACH ROW EXECUTE FUNCTION refuse_marked();`);
}

async function stored(pool: pg.Pool, id: string): Promise<{ revision: number; data: unknown } | undefined> {
  return (await pool.query<{ revision: number; data: unknown }>("SELECT revision, data FROM sync_documents WHERE service = 's' AND id = $1", [id])).rows[0];
}

function openRedis(): Redis {
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => void (await redis.quit()));
  return redis;
}

const TAKEN_BACK = 'the database refused a change answered UNAVAILABLE (not an outage): it is taken back from the cache; its event is not published';
const takenBack = (lines: readonly LogLine[]) => lines.filter((line) => line.msg === TAKEN_BACK);

describe('a document change Postgres refuses, in sync durability', () => {
  it('is answered INTERNAL_SERVER_ERROR and taken back: readers, subscribers and the next write go on from the revision Postgres has', async () => {
    const database = await createTestDatabase();
    const prefix = uniquePrefix();
    const logs = captureLogs();
    // No sweep: only the write path flushes.
    const server = await startTestServer(
      { DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, SYNC_DURABILITY: 'sync', SYNC_SWEEP_INTERVAL_MS: '600000', LOG_LEVEL: 'warn' },
      { logDestination: logs },
    );
    const pool = openTestPool(database.url);
    const redis = openRedis();
    await refuseMarkedDocuments(pool);
    expect((await create(server, 'd', { v: 1 })).data).toEqual({ createDocument: { revision: 1, data: { v: 1 } } });
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'doc', type: 'subscribe', payload: { query: 'subscription { document(service: "s", id: "d") { operation revision data } }' } });
    expect(await client.nextMessage()).toMatchObject({ payload: { data: { document: { operation: 'SNAPSHOT', revision: 1 } } } });

    const refused = await merge(server, 'd', { refuse: true });
    expect(refused.errors?.[0]?.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
    expect(logs.lines.filter((line) => line.level >= 50)).toMatchObject([{ msg: 'internal error', fault: 'DOCUMENT_WRITE_REFUSED', err: { message: expect.stringContaining('refused by the test') as unknown } }]);
    // Nothing left waiting: the cache holds revision 1 again, clean.
    expect(await redis.zcard(`${prefix}doc:dirty`)).toBe(0);
    expect(await read(server, 'd')).toEqual({ revision: 1, data: { v: 1 } });

    expect((await merge(server, 'd', { v: 2 })).data).toEqual({ mergeDocument: { revision: 2, data: { v: 2 } } });
    // The subscriber's next change is that one: no gap, no resync.
    expect(await client.nextMessage()).toMatchObject({ payload: { data: { document: { operation: 'UPDATED', revision: 2, data: { v: 2 } } } } });
    expect(await stored(pool, 'd')).toEqual({ revision: 2, data: { v: 2 } });

    // A creation the same way: the document does not exist, and can be created.
    expect((await create(server, 'n', { refuse: 1 })).errors?.[0]?.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
    expect(await read(server, 'n')).toBeNull();
    expect((await create(server, 'n', { ok: 1 })).data).toEqual({ createDocument: { revision: 1, data: { ok: 1 } } });
    expect(await stored(pool, 'n')).toEqual({ revision: 1, data: { ok: 1 } });
  });

  it.each([
    ['by its own wait once Postgres is back', false],
    ["by the document's next write on another instance, its own instance gone", true],
  ])('answered UNAVAILABLE during an outage, then refused, is taken back %s', async (_by, ownInstanceGone) => {
    const database = await createTestDatabase();
    const proxy = await startTcpProxy(Number(new URL(database.url).port));
    const proxied = new URL(database.url);
    proxied.port = String(proxy.port);
    const prefix = uniquePrefix();
    const env = { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, SYNC_DURABILITY: 'sync', SYNC_SWEEP_INTERVAL_MS: '600000', LOG_LEVEL: 'warn' };
    const firstLogs = captureLogs();
    const first = await startTestServer({ ...env, DATABASE_URL: proxied.toString() }, { logDestination: firstLogs, autoDispose: !ownInstanceGone });
    const pool = openTestPool(database.url);
    await refuseMarkedDocuments(pool);
    expect((await create(first, 'd', { v: 1 })).data).toEqual({ createDocument: { revision: 1, data: { v: 1 } } });

    proxy.refuse(true);
    proxy.dropAll();
    const answered = await merge(first, 'd', { refuse: true });
    expect(answered.errors?.[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE', revision: 2 });

    let writer = first;
    let logs = firstLogs;
    if (ownInstanceGone) {
      await first.dispose();
      logs = captureLogs();
      writer = await startTestServer({ ...env, DATABASE_URL: database.url }, { logDestination: logs });
      proxy.refuse(false);
    } else {
      proxy.refuse(false);
      await waitFor(() => takenBack(logs.lines).length > 0, { timeoutMs: 20_000, message: 'the waiting change is taken back' });
    }

    expect(await read(writer, 'd')).toEqual({ revision: 1, data: { v: 1 } });
    expect((await merge(writer, 'd', { v: 2 })).data).toEqual({ mergeDocument: { revision: 2, data: { v: 2 } } });
    expect(await stored(pool, 'd')).toEqual({ revision: 2, data: { v: 2 } });
    expect(takenBack(logs.lines)).toMatchObject([{ level: 50, revision: 2, err: { message: expect.stringContaining('refused by the test') as unknown } }]);
  });
});

describe('a dirty document Postgres refuses, in async durability', () => {
  it('does not keep the others out of Postgres: a graceful shutdown writes them past it', async () => {
    const database = await createTestDatabase();
    const prefix = uniquePrefix();
    const logs = captureLogs();
    // No sweep but the one at shutdown.
    const server = await startTestServer(
      { DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, SYNC_DURABILITY: 'async', SYNC_SWEEP_INTERVAL_MS: '600000', LOG_LEVEL: 'warn' },
      { logDestination: logs, autoDispose: false },
    );
    onTestFinished(() => server.dispose());
    const pool = openTestPool(database.url);
    await refuseMarkedDocuments(pool);
    const flushFailed = (id: string) => logs.lines.some((line) => line.msg === 'document flush failed; the sweep retries it' && String(line['entryKey']).endsWith(`:s:${id}`));

    // Acknowledged (async), refused by Postgres: dirty from now on, at the head of the dirty set.
    expect((await create(server, 'refused', { refuse: true })).data).toEqual({ createDocument: { revision: 1, data: { refuse: true } } });
    await waitFor(() => flushFailed('refused'), { message: 'the refused creation was tried' });
    expect((await create(server, 'd', { v: 0 })).data).toEqual({ createDocument: { revision: 1, data: { v: 0 } } });
    await waitFor(async () => (await stored(pool, 'd'))?.revision === 1, { message: 'd in Postgres' });
    // A change of d whose own flush fails (refused for the moment): left to the sweep.
    await pool.query('INSERT INTO refuse_all VALUES (1)');
    expect((await merge(server, 'd', { v: 1 })).data).toEqual({ mergeDocument: { revision: 2, data: { v: 1 } } });
    await waitFor(() => flushFailed('d'), { message: "d's flush was tried" });
    await pool.query('DELETE FROM refuse_all');

    await server.dispose();
    expect(await stored(pool, 'd')).toEqual({ revision: 2, data: { v: 1 } });
    // Only the placeholder the creation's ceiling needed: the refused change is still not in Postgres.
    expect(await stored(pool, 'refused')).toEqual({ revision: 0, data: {} });
    expect(logs.lines.filter((line) => line.level >= 50)).toMatchObject([{ entryKey: expect.stringMatching(/:s:refused$/) as unknown, err: { message: 'refused by the test' } }]);
  });
});
