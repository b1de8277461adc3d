/**
 * WS_MAX_FILTER_BYTES_PER_SUBJECT: the filters one principal (app, env, tenant, subject) holds in
 * its active subscriptions on an instance, across its sockets, as JSON. Every event is matched
 * against each filter of its topic, so past the budget a filtered subscribe is refused with
 * RATE_LIMITED (as past a socket's WS_MAX_SUBSCRIPTION_BYTES); the bytes come back however a
 * subscription ends. Real server, real sockets.
 */
import WebSocket from 'ws';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

const BUDGET = 4096;
const TOPIC = 'budget.events';
const OTHER_TOPIC = 'other.events';

/** A `where` of exactly `bytes` as JSON, which no event published here matches. */
function whereOf(bytes: number): { field: string; eq: string } {
  const where = { field: 'payload.never', eq: '' };
  where.eq = 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(where)));
  expect(Buffer.byteLength(JSON.stringify(where))).toBe(bytes);
  return where;
}

function subscribeEvents(client: RawSocket, id: string, bytes: number | undefined, options: { topic?: string; after?: string } = {}): void {
  const query = 'subscription ($topic: String!, $where: EventWhere, $after: String) { events(topic: $topic, where: $where, after: $after) { id payload } }';
  const variables = { topic: options.topic ?? TOPIC, where: bytes === undefined ? null : whereOf(bytes), after: options.after ?? null };
  client.send({ id, type: 'subscribe', payload: { query, variables } });
}

/** The `error` a subscribe past the budget ends with: the per-socket limit's shape and code. */
function refusal(id: string, bytes: number): object {
  const message = `The filters of this subject's active subscriptions on this instance would exceed WS_MAX_FILTER_BYTES_PER_SUBJECT (${BUDGET} bytes as JSON; this one: ${bytes}): complete one, or subscribe without a filter`;
  return { id, type: 'error', payload: [{ message, extensions: { code: 'RATE_LIMITED' } }] };
}

/** A ping/pong round trip: the socket is open and nothing else was sent to it before the pong. */
async function expectAlive(client: RawSocket): Promise<void> {
  client.send({ type: 'ping', payload: { alive: true } });
  expect(await client.nextMessage()).toEqual({ type: 'pong', payload: { alive: true } });
  expect(client.socket.readyState).toBe(WebSocket.OPEN);
}

const PERMISSIONS = ['budget.read', 'budget.publish', 'other.read'];

describe('WS_MAX_FILTER_BYTES_PER_SUBJECT', () => {
  let server: TestServer;
  /** This test's principal (a subject of its own: a budget not given back fails its own test only). */
  let alice: string;
  let aliceSubject: string;
  let tests = 0;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_FILTER_BYTES_PER_SUBJECT: String(BUDGET) }, { autoDispose: false });
    return () => server.dispose();
  });
  // Sockets of the previous test are terminated when it finishes: start from an idle server, so
  // the subscriber counts below are this test's own.
  beforeEach(async () => {
    await waitFor(() => server.stats().connections === 0 && server.stats().subscribers === 0, { message: 'server idle before the test' });
    tests += 1;
    aliceSubject = `alice-${tests}`;
    alice = await signHs256({ sub: aliceSubject, tenant: 'tenant-a', permissions: PERMISSIONS });
  });

  const subscribers = (count: number, what: string) => waitFor(() => server.stats().subscribers === count, { message: what });

  /**
   * What a subscribe was answered: its first message, or `'subscribed'` when the server holds
   * `count` subscribers first (a refused subscribe never joins, an admitted one sends nothing).
   */
  async function answerTo(client: RawSocket, count: number): Promise<ReceivedMessage | 'subscribed'> {
    const stop = new AbortController();
    const joined = waitFor(() => server.stats().subscribers >= count, { timeoutMs: 20_000, signal: stop.signal }).then(
      () => 'subscribed' as const,
      () => 'subscribed' as const,
    );
    try {
      return await Promise.race([client.nextMessage(), joined]);
    } finally {
      stop.abort();
    }
  }

  /** Two sockets of Alice's holding two 1024-byte filters each: her whole budget. */
  async function fillAcrossTwoSockets(): Promise<[RawSocket, RawSocket]> {
    const first = await openAcknowledgedSocket(server.wsUrl, alice);
    const second = await openAcknowledgedSocket(server.wsUrl, alice);
    subscribeEvents(first, 'a1', 1024);
    subscribeEvents(first, 'a2', 1024);
    subscribeEvents(second, 'a3', 1024);
    subscribeEvents(second, 'a4', 1024);
    await subscribers(4, 'four filtered subscriptions active');
    return [first, second];
  }

  it('refuses the next filtered subscribe of a principal whose filters fill the budget across two sockets, with RATE_LIMITED, and keeps the socket', async () => {
    const [first, second] = await fillAcrossTwoSockets();

    subscribeEvents(second, 'over', 40);
    expect(await answerTo(second, 5)).toEqual(refusal('over', 40));
    await expectAlive(second);
    // A model subscription's filter is counted as well, refused before its resolver looks for the model.
    second.send({ id: 'model', type: 'subscribe', payload: { query: 'subscription { changes(model: "contacts", filter: { status: "eq.active" }) { operation } }' } });
    expect(await answerTo(second, 5)).toEqual(refusal('model', Buffer.byteLength(JSON.stringify({ status: 'eq.active' }))));
    await expectAlive(second);
    expect(server.stats().subscribers).toBe(4);
    expect(first.pending).toEqual([]);
  });

  it('does not touch another subject of the same tenant', async () => {
    await fillAcrossTwoSockets();
    const other = await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: `bob-${tests}`, tenant: 'tenant-a', permissions: PERMISSIONS }));
    for (const id of ['b1', 'b2', 'b3', 'b4']) subscribeEvents(other, id, 1024);
    await subscribers(8, "Bob's four filtered subscriptions active beside Alice's");
    await expectAlive(other);
  });

  it('lets subscriptions without a filter through when the budget is full, and they receive events', async () => {
    const [first] = await fillAcrossTwoSockets();
    subscribeEvents(first, 'plain', undefined);
    await subscribers(5, 'the unfiltered subscription active');
    const published = await postGraphQL(
      server.graphqlUrl,
      { query: 'mutation ($topic: String!) { publish(topic: $topic, payload: { hello: "world" }) { id } }', variables: { topic: TOPIC } },
      { authorization: `Bearer ${alice}` },
    );
    expect(published.body.errors).toBeUndefined();
    expect(await first.nextMessage()).toMatchObject({ id: 'plain', type: 'next', payload: { data: { events: { payload: { hello: 'world' } } } } });
  });

  it('gives the bytes back when a subscription completes', async () => {
    const [, second] = await fillAcrossTwoSockets();
    second.send({ id: 'a3', type: 'complete' });
    await subscribers(3, 'a3 ended');
    subscribeEvents(second, 'after-complete', 1024);
    expect(await answerTo(second, 4)).toBe('subscribed');
    await expectAlive(second);
  });

  it('gives the bytes back when a socket closes', async () => {
    const [first, second] = await fillAcrossTwoSockets();
    first.socket.close(1000, 'bye');
    await first.closed();
    await subscribers(2, "the closed socket's subscriptions ended");
    subscribeEvents(second, 'after-close-1', 1024);
    subscribeEvents(second, 'after-close-2', 1024);
    expect(await answerTo(second, 4)).toBe('subscribed');
    await expectAlive(second);
  });

  it('gives the bytes back when the server ends a subscription', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, alice);
    // A cursor of no stream: the subscription ends with RESYNC_REQUIRED once admitted.
    subscribeEvents(client, 'ended', BUDGET, { after: 'not-a-cursor' });
    expect(await client.nextMessage()).toMatchObject({ id: 'ended', type: 'error', payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] });
    subscribeEvents(client, 'whole', BUDGET);
    expect(await answerTo(client, 1)).toBe('subscribed');
    await expectAlive(client);
  });

  it('gives the bytes back when a refreshed token ends a subscription it may no longer read', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, alice);
    subscribeEvents(client, 'revoked', BUDGET, { topic: OTHER_TOPIC });
    await subscribers(1, 'the subscription to the other topic active');
    client.send({ type: 'ping', payload: { token: await signHs256({ sub: aliceSubject, tenant: 'tenant-a', permissions: ['budget.read'] }) } });
    // The refresh ends what the new token may not read, then answers the ping.
    expect(await client.nextMessage()).toMatchObject({ id: 'revoked', type: 'error', payload: [{ extensions: { reason: 'PERMISSION_REVOKED' } }] });
    expect(await client.nextMessage()).toMatchObject({ type: 'pong', payload: { stoppedSubscriptions: 1 } });
    await subscribers(0, 'the revoked subscription ended');
    subscribeEvents(client, 'whole', BUDGET);
    expect(await answerTo(client, 1)).toBe('subscribed');
    await expectAlive(client);
  });
});
