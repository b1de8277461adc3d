/**
 * Token refresh on a live socket (issue 13 §2): `refreshAuth` over the socket it applies to, the
 * re-check of every subscription, the closes (4412 for another principal, 4419 at expiry), the
 * ping fast path, and the refusal over HTTP.
 */
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { publishMany, seqPayloads, subscribeEvents, eventOf } from '../helpers/events.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, openSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

const REFRESH = 'mutation($t: String!) { refreshAuth(token: $t) { expiresAt stoppedSubscriptions } }';
const READER: TokenClaims = { sub: 'user-1', tenant: 'tenant-a', permissions: ['orders.read', 'billing.read'] };

let server: TestServer;
let publisher: string;

beforeAll(async () => {
  // READER's app and env are the operators' environment: its admins without a tenant may read the dashboard.
  server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_SUBSCRIPTIONS: '1100', OPERATOR_SCOPE: 'shop/prod' }, { autoDispose: false });
  publisher = await signHs256({ sub: 'publisher', roles: ['admin'] });
});
afterAll(() => server.dispose());

/** Sends `refreshAuth` on the socket as operation `id`. */
function sendRefresh(client: RawSocket, id: string, token: string): void {
  client.send({ id, type: 'subscribe', payload: { query: REFRESH, variables: { t: token } } });
}

describe('refreshAuth', () => {
  it('keeps 1,000 subscriptions on one socket through a refresh with no event lost or repeated', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(READER, { expiresInSeconds: 600 }));
    const SUBSCRIPTIONS = 1000;
    const TOPICS = 10;
    const before = server.stats().subscribers;
    for (let i = 0; i < SUBSCRIPTIONS; i += 1) subscribeEvents(client, `s${i}`, { topic: `orders.t${i % TOPICS}` });
    await waitFor(() => server.stats().subscribers === before + SUBSCRIPTIONS, { message: 'every subscription is live' });

    const round = (from: number) => Promise.all(Array.from({ length: TOPICS }, (_unused, t) => publishMany(server, `orders.t${t}`, seqPayloads(from, from + 9), publisher)));
    await round(1);
    // The second round is published while the refresh is handled.
    const second = round(11);
    sendRefresh(client, 'refresh', await signHs256(READER, { expiresInSeconds: 3600 }));
    await second;
    await round(21);

    const expected = SUBSCRIPTIONS * 30;
    const seqs = new Map<string, number[]>();
    let received = 0;
    let refreshed: ReceivedMessage | undefined;
    while (received < expected || refreshed === undefined) {
      const message = await client.nextMessage();
      if (message.id === 'refresh') {
        if (message.type === 'next') refreshed = message;
        continue;
      }
      expect(message.type, JSON.stringify(message)).toBe('next');
      const list = seqs.get(message.id!) ?? [];
      list.push(eventOf(message).payload['seq'] as number);
      seqs.set(message.id!, list);
      received += 1;
    }
    expect(refreshed.payload).toEqual({ data: { refreshAuth: { expiresAt: expect.any(String) as unknown, stoppedSubscriptions: 0 } } });
    const all = Array.from({ length: 30 }, (_unused, i) => i + 1);
    for (let i = 0; i < SUBSCRIPTIONS; i += 1) expect(seqs.get(`s${i}`), `s${i}`).toEqual(all);
    expect(server.stats().subscribers).toBe(before + SUBSCRIPTIONS);
  });

  it('ends, at once and with a reason, the subscription whose read permission the new token lacks; the others go on', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(READER));
    subscribeEvents(client, 'orders', { topic: 'orders.kept' });
    subscribeEvents(client, 'billing', { topic: 'billing.lost' });
    await waitFor(() => server.stats().subscribers >= 2, { message: 'both subscriptions are live' });

    sendRefresh(client, 'r', await signHs256({ ...READER, permissions: ['orders.read'] }));
    // The revocation is sent before the refresh is answered: the subscription has stopped by then.
    expect(await client.nextMessage()).toEqual({
      id: 'billing',
      type: 'error',
      payload: [{ message: expect.any(String) as unknown, extensions: { code: 'FORBIDDEN', reason: 'PERMISSION_REVOKED' } }],
    });
    expect(await client.nextMessage()).toMatchObject({ id: 'r', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 1 } } } });
    expect(await client.nextMessage()).toEqual({ id: 'r', type: 'complete' });

    await publishMany(server, 'billing.lost', seqPayloads(1, 1), publisher);
    await publishMany(server, 'orders.kept', seqPayloads(1, 1), publisher);
    // Barrier: the kept subscription's event arrives, and nothing for the ended one before it.
    const next = await client.nextMessage();
    expect(next.id).toBe('orders');
    expect(eventOf(next).payload).toEqual({ seq: 1 });

    // New operations run as the refreshed principal.
    client.send({ id: 'v', type: 'subscribe', payload: { query: '{ viewer { permissions } }' } });
    expect(await client.nextMessage()).toEqual({ id: 'v', type: 'next', payload: { data: { viewer: { permissions: ['orders.read'] } } } });
  });

  it('ends the admin-only subscriptions (alerts, stats, dashboard) when the new token drops the admin role; the others go on', async () => {
    // Of the whole environment (no tenant): an admin limited to a tenant may not read the dashboard at all.
    const admin: TokenClaims = { ...READER, tenant: undefined, roles: ['admin'] };
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(admin));
    const before = server.stats().subscribers;
    client.send({ id: 'alerts', type: 'subscribe', payload: { query: 'subscription { alertUpdates { type } }' } });
    client.send({ id: 'stats', type: 'subscribe', payload: { query: 'subscription { statsUpdates(topic: "orders.x", tenant: "tenant-a") { count } }' } });
    client.send({ id: 'dashboard', type: 'subscribe', payload: { query: 'subscription { dashboardUpdates { __typename } }' } });
    subscribeEvents(client, 'orders', { topic: 'orders.kept' });
    await waitFor(() => server.stats().subscribers === before + 4, { message: 'every subscription is live' });

    sendRefresh(client, 'r', await signHs256({ ...admin, roles: [] }));
    // Each is ended before the refresh is answered (a dashboard tick may come before the refresh).
    const revoked: string[] = [];
    let answer = await client.nextMessage();
    for (; answer.id !== 'r'; answer = await client.nextMessage()) {
      if (answer.id === 'dashboard' && answer.type === 'next') continue;
      expect(answer).toEqual({
        id: expect.any(String) as unknown,
        type: 'error',
        payload: [{ message: expect.any(String) as unknown, extensions: { code: 'FORBIDDEN', reason: 'PERMISSION_REVOKED' } }],
      });
      revoked.push(answer.id!);
    }
    expect(revoked.sort()).toEqual(['alerts', 'dashboard', 'stats']);
    expect(answer).toMatchObject({ type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 3 } } } });
    expect(await client.nextMessage()).toEqual({ id: 'r', type: 'complete' });
    await waitFor(() => server.stats().subscribers === before + 1, { message: 'the admin-only subscriptions were stopped' });

    // The events subscription goes on: its event is the next message, nothing of the others before it.
    await publishMany(server, 'orders.kept', seqPayloads(1, 1), await signHs256({ sub: 'publisher', roles: ['admin'], tenant: undefined }));
    const next = await client.nextMessage();
    expect(next.id).toBe('orders');
    expect(eventOf(next).payload).toEqual({ seq: 1 });
  });

  it('refuses a token whose exp a date cannot hold — on a ping refresh, at connection_init and over HTTP — and lives on', async () => {
    // exp 1e13 s is beyond what a Date can hold (8.64e12 s): jose accepts it as a number.
    const tokens = [await signHs256(READER, { expiresInSeconds: 1e13 }), await signHs256(READER, { notBeforeInSeconds: -1e13 })];
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(READER));
    for (const token of tokens) {
      client.send({ type: 'ping', payload: { token } });
      expect(await client.nextMessage()).toEqual({ type: 'pong', payload: { error: 'UNAUTHENTICATED' } });

      const refused = await openSocket(server.wsUrl);
      refused.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      expect(await refused.closed()).toEqual({ code: 4403, reason: expect.stringMatching(/^Forbidden: Invalid token: claim '(exp|nbf)' is out of range$/) as unknown });

      const { status, body } = await postGraphQL(server.graphqlUrl, { query: '{ viewer { expiresAt } }' }, { authorization: `Bearer ${token}` });
      expect(status).toBe(401);
      expect(body.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
    }
    expect((await fetch(new URL('/health', server.graphqlUrl))).status).toBe(200);
    client.send({ id: 'v', type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.nextMessage()).toEqual({ id: 'v', type: 'next', payload: { data: { viewer: { subject: 'user-1' } } } });
  });

  it.each([
    ['another tenant', { tenant: 'tenant-b' }],
    ['another subject', { sub: 'user-2' }],
  ])('closes the socket with 4412 when the new token is of %s', async (_label, claims) => {
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(READER));
    sendRefresh(client, 'r', await signHs256({ ...READER, ...claims }));
    expect(await client.closed()).toEqual({ code: 4412, reason: 'Principal changed: reconnect with the new token' });
  });

  it('refuses a token that fails verification and keeps the socket with its old token', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(READER));
    sendRefresh(client, 'r', await signHs256(READER, { secret: 'another-secret-that-is-at-least-32-bytes' }));
    expect(await client.nextMessage()).toMatchObject({ id: 'r', type: 'next', payload: { errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] } });
    expect(await client.nextMessage()).toEqual({ id: 'r', type: 'complete' });
    client.send({ id: 'v', type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.nextMessage()).toMatchObject({ id: 'v', type: 'next', payload: { data: { viewer: { subject: 'user-1' } } } });
  });

  it('moves the expiry: a token about to expire, refreshed, no longer closes the socket then', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256(READER, { expiresInSeconds: 3 }));
    // Told at once: the token lives less than the notice period (60 s).
    expect(await client.nextMessage()).toMatchObject({ type: 'ping', payload: { reason: 'TOKEN_EXPIRING' } });
    const fresh = await signHs256(READER, { expiresInSeconds: 3600 });
    // The fast path: a ping carrying the token, answered by a pong saying how it went.
    client.send({ type: 'ping', payload: { token: fresh } });
    const pong = await client.nextMessage();
    expect(pong).toMatchObject({ type: 'pong', payload: { stoppedSubscriptions: 0 } });
    const expiresAt = Date.parse((pong.payload as { tokenExpiresAt: string }).tokenExpiresAt);
    expect(expiresAt).toBeGreaterThan(Date.now() + 3_000_000);
    client.send({ id: 'v', type: 'subscribe', payload: { query: '{ viewer { expiresAt } }' } });
    expect(await client.nextMessage()).toMatchObject({ id: 'v', type: 'next', payload: { data: { viewer: { expiresAt: new Date(expiresAt).toISOString() } } } });
  });

  it('closes an expired socket with 4419, which a stock graphql-ws client retries with a fresh token', async () => {
    let connects = 0;
    let acknowledged = 0;
    const closes: number[] = [];
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 3,
      retryWait: () => Promise.resolve(),
      connectionParams: async () => {
        connects += 1;
        // The first token expires in 1–2 s; the one fetched on reconnect lives long.
        return { authorization: `Bearer ${await signHs256(READER, { expiresInSeconds: connects === 1 ? 2 : 3600 })}` };
      },
      on: {
        connected: () => void (acknowledged += 1),
        closed: (event) => void closes.push((event as { code: number }).code),
      },
    });
    onTestFinished(() => client.dispose());
    await waitFor(() => acknowledged === 2, { timeoutMs: 10_000, message: 'the client reconnected after the expiry' });
    expect(closes).toEqual([4419]);
    expect(connects).toBe(2);
  });

  it('is refused over HTTP with WEBSOCKET_ONLY', async () => {
    const token = await signHs256(READER);
    const { body } = await postGraphQL(server.graphqlUrl, { query: REFRESH, variables: { t: token } }, { authorization: `Bearer ${token}` });
    expect(body.errors?.map((error) => error.extensions?.['code'])).toEqual(['WEBSOCKET_ONLY']);
    expect(body.data ?? null).toBeNull();
  });
});
