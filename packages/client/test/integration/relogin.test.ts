/**
 * A new login on the same client (the README's flow: log out, log in as someone else, then
 * `reconnect()`): nothing the previous user received stays on show. As soon as the new socket's
 * token names another subject, tenant, app or env, every subscription drops what it holds — a
 * document, a live model's records, a topic's position — and starts afresh for the new user: what
 * it may read comes back, what it may not stays empty (the server is silent there).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, SessionEndedError, type LiveDocument, type LiveModelSnapshot, type TopicEvent, type TributaryClient } from '@tributary/client';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../../../../test/helpers/cdc.ts';
import { publishMany, seqPayloads } from '../../../../test/helpers/events.ts';
import { startTcpProxy } from '../../../../test/helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const ALICE: TokenClaims = { sub: 'alice', tenant: 'tenant-a', permissions: ['sync.boards.read', 'sync.boards.write', 'orders.read', 'orders.publish'] };
const BOB: TokenClaims = { sub: 'bob', tenant: 'tenant-b', permissions: ['sync.boards.read', 'sync.boards.write', 'orders.read', 'orders.publish'] };
/** Another tenant's user who may read nothing. */
const EVE: TokenClaims = { sub: 'eve', tenant: 'tenant-b', permissions: [] };

/** A client whose getToken answers the current login's token; `login` switches it (the app's auth library). */
async function loggedIn(url: string, claims: TokenClaims): Promise<{ client: TributaryClient; login: (next: TokenClaims) => Promise<void> }> {
  let token = await signHs256(claims);
  const client = createClient({ url, getToken: () => token, backoff: { initialMs: 50, maxMs: 200 } });
  onTestFinished(() => client.close());
  return {
    client,
    login: async (next) => {
      token = await signHs256(next);
    },
  };
}

async function createBoard(server: TestServer, claims: TokenClaims, data: object): Promise<void> {
  const token = await signHs256(claims);
  const { body } = await postGraphQL(server.graphqlUrl, { query: 'mutation($d: JSON!) { createDocument(service: "boards", id: "b1", data: $d) { revision } }', variables: { d: data } }, { authorization: `Bearer ${token}` });
  expect(body.errors).toBeUndefined();
}

describe('a new login of another user', () => {
  it('drops the previous user’s document before the new socket is up, then shows the new user’s own', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    await createBoard(server, ALICE, { secret: 'tenant-a payroll' });
    await createBoard(server, BOB, { plan: 'tenant-b roadmap' });
    const { client, login } = await loggedIn(server.wsUrl, ALICE);
    const log: unknown[] = [];
    const subscription = client.subscribeDocument('boards', 'b1', {
      onDocument: (document: LiveDocument) => void log.push(document.data),
      onReset: () => void log.push('reset'),
    });
    await waitFor(() => subscription.current !== undefined, { message: 'alice’s document' });

    await login(BOB);
    client.reconnect();
    await waitFor(() => client.state === 'connected', { message: 'bob connected' });
    await waitFor(() => subscription.current !== undefined, { message: 'bob’s document' });
    expect(log).toEqual([{ secret: 'tenant-a payroll' }, 'reset', { plan: 'tenant-b roadmap' }]);
  });

  it('shows nothing of the previous user’s document to a new user who may not read it (the server stays silent)', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    await createBoard(server, ALICE, { secret: 'tenant-a payroll' });
    const { client, login } = await loggedIn(server.wsUrl, ALICE);
    let resets = 0;
    const subscription = client.subscribeDocument('boards', 'b1', { onDocument: () => {}, onReset: () => void (resets += 1) });
    await waitFor(() => subscription.current !== undefined, { message: 'alice’s document' });

    await login(EVE);
    client.reconnect();
    // Dropped when the new socket's token was sent: by its acknowledgement, nothing of alice's is held.
    await waitFor(() => client.state === 'connected', { message: 'eve connected' });
    expect(subscription.current).toBeUndefined();
    expect(resets).toBe(1);
  });

  it('drops the document as soon as a refresh brings another tenant’s token (4412), before any reconnect()', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    await createBoard(server, ALICE, { secret: 'tenant-a payroll' });
    const { client, login } = await loggedIn(server.wsUrl, ALICE);
    let resets = 0;
    const subscription = client.subscribeDocument('boards', 'b1', { onDocument: () => {}, onReset: () => void (resets += 1) });
    await waitFor(() => subscription.current !== undefined, { message: 'alice’s document' });

    await login(BOB);
    await client.refreshToken();
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    expect(subscription.current).toBeUndefined();
    expect(resets).toBe(1);
    // The new login's socket resets nothing more: nothing of anyone is held.
    client.reconnect();
    await waitFor(() => subscription.current?.data !== undefined, { message: 'bob’s document' });
    expect(resets).toBe(1);
  });

  it('starts a topic afresh at the new user’s position: onReset at once, then onResync on the new socket, then only the new tenant’s events', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const { client, login } = await loggedIn(server.wsUrl, ALICE);
    const log: string[] = [];
    const received: TopicEvent[] = [];
    const subscription = client.subscribeEvents('orders.relogin', {
      onEvent: (event) => void received.push(event),
      onReset: () => void log.push('reset'),
      onResync: () => void log.push('resync'),
    });
    await waitFor(() => subscription.cursor !== undefined, { message: 'positioned' });
    await publishMany(server, 'orders.relogin', seqPayloads(1, 2), await signHs256(ALICE));
    await waitFor(() => received.length === 2, { message: 'alice’s events' });
    const alicesCursor = subscription.cursor;

    await login(BOB);
    client.reconnect();
    expect(received).toHaveLength(2);
    // The position read for bob comes before onResync, so every event published after it arrives.
    await waitFor(() => log.includes('resync'), { message: 'refilled for bob' });
    expect(log).toEqual(['reset', 'resync']);
    expect(subscription.cursor).not.toBe(alicesCursor);
    await publishMany(server, 'orders.relogin', seqPayloads(3, 3), await signHs256(ALICE));
    await publishMany(server, 'orders.relogin', seqPayloads(10, 11), await signHs256(BOB));
    await waitFor(() => received.length === 4, { message: 'bob’s events' });
    expect(received.map((event) => (event.payload as { seq: number }).seq)).toEqual([1, 2, 10, 11]);
    // No RESYNC_REQUIRED for a cursor of alice's: the refill above was the only one.
    expect(log).toEqual(['reset', 'resync']);
  });

  it('ends a publish still waiting for a socket with SessionEndedError: it never runs under the next login', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const proxy = await startTcpProxy(server.port);
    const bobsHead = async () => {
      const { body } = await postGraphQL(server.graphqlUrl, { query: '{ topicCursor(topic: "orders.relogin") }' }, { authorization: `Bearer ${await signHs256(BOB)}` });
      expect(body.errors).toBeUndefined();
      return body.data?.['topicCursor'];
    };
    const { client, login } = await loggedIn(`ws://127.0.0.1:${proxy.port}/graphql`, ALICE);
    await waitFor(() => client.state === 'connected', { message: 'connected' });
    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => client.state === 'reconnecting', { message: 'lost' });
    // Alice's publish waits for a socket; meanwhile she logs out and bob logs in.
    const outcome = client.publish('orders.relogin', { by: 'alice' }).then(
      () => 'published',
      (error: unknown) => error,
    );
    const before = await bobsHead();
    await login(BOB);
    proxy.refuse(false);
    client.reconnect();
    expect(await outcome).toBeInstanceOf(SessionEndedError);
    await waitFor(() => client.state === 'connected', { message: 'bob connected' });
    // Nothing was published in bob's scope.
    expect(await bobsHead()).toBe(before);
  });

  it('empties a live model at once (status loading), then loads the new tenant’s records', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'tenant-a', 'ann');
    await insertContact(setup, 'tenant-b', 'bo');
    const reader = { permissions: ['crm.contacts.read'] };
    const { client, login } = await loggedIn(setup.server.wsUrl, { ...ALICE, ...reader });
    const contacts = client.liveModel<{ name: string }>('contacts');
    await waitFor(() => contacts.isLive && contacts.records.length === 1, { timeoutMs: 20_000, message: 'alice’s records' });
    expect(contacts.records.map((record) => record.name)).toEqual(['ann']);
    const seen: LiveModelSnapshot<{ name: string }>[] = [];
    contacts.subscribe(() => void seen.push(contacts.getSnapshot()));

    await login({ ...BOB, ...reader });
    client.reconnect();
    await waitFor(() => contacts.isLive && contacts.records.length === 1 && contacts.records[0]!.name === 'bo', { timeoutMs: 20_000, message: 'bob’s records' });
    // From the reset on, every snapshot shown is empty or bob's.
    const reset = seen.findIndex((snapshot) => snapshot.status === 'loading');
    expect(reset).toBeGreaterThanOrEqual(0);
    expect(seen[reset]).toMatchObject({ records: [], lastUpdatedAt: null });
    expect(seen.slice(reset).flatMap((snapshot) => snapshot.records.map((record) => record.name))).not.toContain('ann');
  });
});
