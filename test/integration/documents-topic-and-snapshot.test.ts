import { describe, expect, it } from 'vitest';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

/*
 * Sync documents at their edges: a service and id whose document topic would be too long, a
 * subscription opened on a deleted document, a merge that makes a document too large, and
 * creations of one id racing each other. Documents live in app/env/tenant "default".
 */

const MODES: Record<string, () => Record<string, string>> = {
  database: () => ({}),
  'redis cache, sync': () => ({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'sync' }),
  'redis cache, async': () => ({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async' }),
};

async function gql(server: TestServer, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(server.graphqlUrl, { query, variables })).body;
}

const CREATE = 'mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { revision } }';

function subscribeDocument(client: RawSocket, service: string, id: string): void {
  client.send({
    id: 'doc',
    type: 'subscribe',
    payload: { query: 'subscription($s: String!, $id: ID!) { document(service: $s, id: $id) { operation revision data } }', variables: { s: service, id } },
  });
}

describe.each(Object.keys(MODES))('sync documents at their limits (%s)', (mode) => {
  it('refuses a service and id whose document topic would pass 200 characters with BAD_USER_INPUT on id, before anything is written', async () => {
    const database = await createTestDatabase();
    const server = await startTestServer({ DATABASE_URL: database.url, ...MODES[mode]!() });
    const pool = openTestPool(database.url);
    // 63 characters: the longest service. sync.{service}.doc.{id} leaves 127 for the id.
    const service = `s${'x'.repeat(62)}`;
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'created', type: 'subscribe', payload: { query: `subscription { events(topic: "sync.${service}.created") { payload } }` } });
    await waitFor(() => server.stats().subscribers === 1);

    const refused = await gql(server, CREATE, { s: service, id: 'i'.repeat(128), d: { v: 1 } });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    expect(refused.errors?.[0]?.message).toContain('at most 127');
    const { rows } = await pool.query('SELECT id FROM sync_documents WHERE service = $1', [service]);
    expect(rows).toEqual([]);
    for (const [query, field] of [
      ['query($s: String!, $id: ID!) { document(service: $s, id: $id) { revision } }', 'document'],
      ['mutation($s: String!, $id: ID!) { mergeDocument(service: $s, id: $id, patch: {}) { revision } }', 'mergeDocument'],
    ] as const) {
      const body = await gql(server, query, { s: service, id: 'i'.repeat(128) });
      expect(body.errors?.[0]?.extensions, field).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    }
    const live = await openAcknowledgedSocket(server.wsUrl);
    subscribeDocument(live, service, 'i'.repeat(128));
    expect(await live.nextMessage()).toMatchObject({ type: 'next', payload: { errors: [{ extensions: { code: 'BAD_USER_INPUT', field: 'id' } }] } });

    // The longest id that fits is taken, and its creation is the first event of the topic.
    const fits = await gql(server, CREATE, { s: service, id: 'i'.repeat(127), d: { v: 1 } });
    expect(fits).toEqual({ data: { createDocument: { revision: 1 } } });
    const event = await client.nextMessage();
    expect(event).toMatchObject({ id: 'created', payload: { data: { events: { payload: { documentId: 'i'.repeat(127), revision: 1 } } } } });
  });

  it('starts a subscription on a deleted document at its deletion, so its re-creation comes next without a resync', async () => {
    const server = await startTestServer(MODES[mode]!());
    await gql(server, CREATE, { s: 'board', id: 'd', d: { v: 1 } });
    expect(await gql(server, 'mutation { deleteDocument(service: "board", id: "d") { revision } }')).toEqual({ data: { deleteDocument: { revision: 2 } } });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeDocument(client, 'board', 'd');
    expect(await client.nextMessage()).toMatchObject({
      type: 'next',
      payload: { data: { document: { operation: 'SNAPSHOT', revision: 2, data: null } } },
    });
    expect(await gql(server, CREATE, { s: 'board', id: 'd', d: { v: 2 } })).toEqual({ data: { createDocument: { revision: 3 } } });
    expect(await client.nextMessage()).toMatchObject({
      type: 'next',
      payload: { data: { document: { operation: 'CREATED', revision: 3, data: { v: 2 } } } },
    });
    await gql(server, 'mutation { mergeDocument(service: "board", id: "d", patch: { v: 3 }) { revision } }');
    expect(await client.nextMessage()).toMatchObject({ payload: { data: { document: { operation: 'UPDATED', revision: 4 } } } });
  });

  it('names patch when a merge would make the document too large, and data when a replacement is', async () => {
    const server = await startTestServer(MODES[mode]!());
    await gql(server, CREATE, { s: 'big', id: 'd', d: { v: 1 } });
    const large = 'x'.repeat(300 * 1024);
    const merged = await gql(server, 'mutation($p: JSON!) { mergeDocument(service: "big", id: "d", patch: $p) { revision } }', { p: { large } });
    expect(merged.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'patch' });
    const replaced = await gql(server, 'mutation($d: JSON!) { replaceDocument(service: "big", id: "d", data: $d) { revision } }', { d: { large } });
    expect(replaced.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'data' });
  });
});

describe('creations of one id racing each other (database)', () => {
  it('answers the creation that lost the race CONFLICT with the current revision', async () => {
    const database = await createTestDatabase();
    const server = await startTestServer({ DATABASE_URL: database.url });
    const pool = openTestPool(database.url);
    const other = await pool.connect();
    // Another creation of the id, not committed yet: the server's finds no row to lock, then
    // its insert waits for this one.
    await other.query('BEGIN');
    await other.query(`INSERT INTO sync_documents (app, env, tenant, service, id, revision, data) VALUES ('default', 'default', 'default', 'race', 'same', 1, '{}')`);
    const creating = gql(server, CREATE, { s: 'race', id: 'same', d: { n: 1 } });
    await waitFor(
      async () =>
        (
          await pool.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO sync_documents%'",
          )
        ).rows[0]?.n === 1,
      { message: "the server's creation waits for the other one" },
    );
    await other.query('COMMIT');
    other.release();
    expect((await creating).errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', currentRevision: 1 });
  });
});
