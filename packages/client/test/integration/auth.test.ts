/**
 * Tokens on a live socket: refreshed in-band before they expire (subscriptions go on, nothing
 * lost), an expiry without a refresh (4419 → a new socket with a token from getToken), a refresh
 * to another tenant (4412 → unauthorized), a refused token (4403 → unauthorized until reconnect()).
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createClient, documents, SessionEndedError, type ClientOptions, type ConnectionState, type TopicEvent, type TributaryClient } from '@tributary/client';
import { publishMany, seqPayloads } from '../../../../test/helpers/events.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { startTestServer, type TestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const READER: TokenClaims = { sub: 'reader', tenant: 'tenant-a', permissions: ['orders.read'] };
const VIEWER: TypedDocumentNode<{ viewer: { subject: string; expiresAt: string | null } }, Record<string, never>> = parse('{ viewer { subject expiresAt } }');

let server: TestServer;
let publisher: string;

beforeAll(async () => {
  server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_TOKEN_EXPIRY_GRACE_MS: '0' }, { autoDispose: false });
  publisher = await signHs256({ sub: 'publisher', tenant: 'tenant-a', permissions: ['orders.publish'] });
});
afterAll(() => server.dispose());

function connect(getToken: ClientOptions['getToken'], options: Partial<ClientOptions> = {}): { client: TributaryClient; states: ConnectionState[] } {
  const states: ConnectionState[] = [];
  const client = createClient({ url: server.wsUrl, getToken, backoff: { initialMs: 50, maxMs: 200 }, ...options });
  client.onStateChange((state) => states.push(state));
  onTestFinished(() => client.close());
  return { client, states };
}

describe('tokens on a live socket', () => {
  it('hands a new token to the socket before the old one expires: the same socket, every subscription goes on, no event lost', async () => {
    let calls = 0;
    // A short-lived first token: the server's notice (sent at once: it lives less than the notice
    // period) makes the client ask getToken again, which gives a long-lived one.
    const { client, states } = connect(async () => signHs256(READER, { expiresInSeconds: (calls += 1) === 1 ? 4 : 3600 }));
    const topics = ['orders.a', 'orders.b', 'orders.c'];
    const received = new Map<string, TopicEvent[]>(topics.map((topic) => [topic, []]));
    const subscriptions = topics.map((topic) => client.subscribeEvents(topic, { onEvent: (event) => void received.get(topic)!.push(event) }));
    // Each holds a position (the topic's cursor) from here: later events reach it.
    await waitFor(() => subscriptions.every((subscription) => subscription.cursor !== undefined), { message: 'positioned' });
    await Promise.all(topics.map((topic) => publishMany(server, topic, seqPayloads(1, 5), publisher)));
    await waitFor(() => calls === 2, { message: 'getToken asked again' });
    const viewer = await waitFor(async () => {
      const { viewer } = await client.request(VIEWER, {});
      return viewer.expiresAt !== null && Date.parse(viewer.expiresAt) > Date.now() + 3_000_000 ? viewer : undefined;
    }, { message: 'the socket took the new token' });
    expect(viewer?.subject).toBe('reader');
    await Promise.all(topics.map((topic) => publishMany(server, topic, seqPayloads(6, 10), publisher)));
    await waitFor(() => topics.every((topic) => received.get(topic)!.length === 10), { message: 'every event' });
    for (const topic of topics) expect(received.get(topic)!.map((event) => (event.payload as { seq: number }).seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // One socket all along: never reconnected.
    expect(states).toEqual(['connected']);
  });

  it('reconnects with a token from getToken when the socket’s expired without a refresh (4419), and resumes its subscriptions', async () => {
    // getToken keeps answering the short-lived token (so no refresh happens) until the socket is lost.
    let token = await signHs256(READER, { expiresInSeconds: 2 });
    let calls = 0;
    const { client, states } = connect(() => {
      calls += 1;
      return token;
    });
    const longLived = await signHs256(READER, { expiresInSeconds: 3600 });
    client.onStateChange((state) => {
      if (state === 'reconnecting') token = longLived;
    });
    const received: TopicEvent[] = [];
    const subscription = client.subscribeEvents('orders.expiry', { onEvent: (event) => void received.push(event) });
    await waitFor(() => subscription.cursor !== undefined, { message: 'positioned' });
    await publishMany(server, 'orders.expiry', seqPayloads(1, 2), publisher);
    await waitFor(() => states.includes('reconnecting') && client.state === 'connected', { timeoutMs: 25_000, message: 'closed at expiry and reconnected' });
    await publishMany(server, 'orders.expiry', seqPayloads(3, 4), publisher);
    await waitFor(() => received.length === 4, { message: 'every event' });
    expect(received.map((event) => (event.payload as { seq: number }).seq)).toEqual([1, 2, 3, 4]);
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
    expect(calls).toBeGreaterThanOrEqual(2);
    const { viewer } = await client.request(VIEWER, {});
    expect(Date.parse(viewer.expiresAt ?? '')).toBeGreaterThan(Date.now() + 3_000_000);
  });

  it('retries a token refused at connect as just expired (4419 from this server, 4403 from older ones: a device clock behind the server’s), asking getToken again until it has a new one', async () => {
    // The auth library hands out its cached token until it has expired by the device's own clock:
    // here, for two more connects after the server closed the socket at expiry (4419).
    const expiring = await signHs256(READER, { expiresInSeconds: 2 });
    const fresh = await signHs256(READER, { expiresInSeconds: 3600 });
    let lost = false;
    let staleAnswers = 0;
    const { client, states } = connect(() => {
      if (!lost) return expiring;
      if (staleAnswers < 2) {
        staleAnswers += 1;
        return expiring;
      }
      return fresh;
    });
    client.onStateChange((state) => {
      if (state === 'reconnecting') lost = true;
    });
    await waitFor(() => lost && (client.state === 'connected' || client.state === 'unauthorized'), { timeoutMs: 25_000, message: 'closed at expiry, then connected or refused' });
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
    expect(staleAnswers).toBe(2);
    const { viewer } = await client.request(VIEWER, {});
    expect(Date.parse(viewer.expiresAt ?? '')).toBeGreaterThan(Date.now() + 3_000_000);
  });

  it('retries a refusal of the token it handed over in-band once that one expired (4419), as it does for a connect token', async () => {
    // The socket's first token is replaced in-band (refreshAuth) by a second one at once (it lives
    // less than the server's notice period); the second expires without a refresh (4419), and the
    // auth library still hands it out for two more connects (a device clock behind the server's).
    const first = await signHs256(READER, { expiresInSeconds: 2 });
    const second = await signHs256(READER, { expiresInSeconds: 3 });
    const fresh = await signHs256(READER, { expiresInSeconds: 3600 });
    let calls = 0;
    let lost = false;
    let staleAnswers = 0;
    const { client, states } = connect(() => {
      calls += 1;
      if (calls === 1) return first;
      if (!lost) return second;
      if (staleAnswers < 2) {
        staleAnswers += 1;
        return second;
      }
      return fresh;
    });
    client.onStateChange((state) => {
      if (state === 'reconnecting') lost = true;
    });
    await waitFor(() => lost && (client.state === 'connected' || client.state === 'unauthorized'), { timeoutMs: 25_000, message: 'closed at expiry, then connected or refused' });
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
    // Both stale answers were refused and retried: the socket had the second token when it expired.
    expect(staleAnswers).toBe(2);
    const { viewer } = await client.request(VIEWER, {});
    expect(Date.parse(viewer.expiresAt ?? '')).toBeGreaterThan(Date.now() + 3_000_000);
  });

  it('rides out UNAUTHENTICATED while the socket’s token is in its grace period: it asks for a new token, and a subscription and a publish started then go on once the socket has one', async () => {
    const graceServer = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_TOKEN_EXPIRY_GRACE_MS: '20000' });
    const claims: TokenClaims = { ...READER, permissions: ['orders.read', 'orders.publish'] };
    const expiring = await signHs256(claims, { expiresInSeconds: 2 });
    const expiresAt = (JSON.parse(Buffer.from(expiring.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp * 1000;
    let current = expiring;
    let asked = 0;
    const client = createClient({
      url: graceServer.wsUrl,
      getToken: () => {
        asked += 1;
        return current;
      },
      backoff: { initialMs: 50, maxMs: 200 },
      onError: () => {},
    });
    onTestFinished(() => client.close());
    await waitFor(() => client.state === 'connected', { message: 'connected' });
    // Past its expiry the socket lives on (grace), refusing every operation but refreshAuth.
    await waitFor(() => Date.now() >= expiresAt, { message: 'the token expired' });
    const errors: unknown[] = [];
    const received: TopicEvent[] = [];
    const subscription = client.subscribeEvents('orders.grace', { onEvent: (event) => void received.push(event), onError: (error) => void errors.push(error) });
    // Settled to a value: its outcome is looked at below, once the new token was handed out.
    const published = client.publish('orders.grace', { seq: 0 }).then(
      (event) => event,
      (error: unknown) => error,
    );
    const asking = asked;
    await waitFor(() => asked > asking, { message: 'getToken asked again' });
    // The auth library has a new token now: the client hands it over at its next try.
    current = await signHs256(claims);
    expect(await published).toMatchObject({ payload: { seq: 0 } });
    await waitFor(() => subscription.cursor !== undefined, { timeoutMs: 15_000, message: 'the subscription positioned' });
    await publishMany(graceServer, 'orders.grace', seqPayloads(1, 3), publisher);
    await waitFor(() => received.filter((event) => (event.payload as { seq: number }).seq > 0).length === 3, { message: 'the events published after' });
    expect(received.map((event) => (event.payload as { seq: number }).seq).filter((seq) => seq > 0)).toEqual([1, 2, 3]);
    expect(errors).toEqual([]);
    expect(client.state).toBe('connected');
  });

  it('is unauthorized when a refresh hands over another tenant’s token (the server closes 4412), and stays so', async () => {
    let tenant = 'tenant-a';
    const { client, states } = connect(() => signHs256({ ...READER, tenant }));
    await waitFor(() => client.state === 'connected', { message: 'connected' });
    tenant = 'tenant-b';
    await client.refreshToken();
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    expect(states).toEqual(['connected', 'unauthorized']);
    // No retry on its own: a request waits for a socket that does not come until reconnect().
    const pending = client.request(VIEWER, {});
    client.reconnect();
    expect((await pending).viewer.subject).toBe('reader');
    expect(states).toEqual(['connected', 'unauthorized', 'connecting', 'connected']);
  });

  it('is unauthorized when the server refuses the token at connect (4403), until reconnect() with a good one', async () => {
    let good = false;
    const { client, states } = connect(() => (good ? signHs256(READER) : signHs256(READER, { secret: 'another-secret-that-is-at-least-32-bytes' })));
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    good = true;
    client.reconnect();
    await waitFor(() => client.state === 'connected', { message: 'connected' });
    expect(states).toEqual(['unauthorized', 'connecting', 'connected']);
  });

  it('rejects a publish made while unauthorized at once: it never waits for the next login', async () => {
    let good = false;
    const { client } = connect(() => (good ? signHs256({ ...READER, sub: 'next-login', permissions: ['orders.publish'] }) : signHs256(READER, { secret: 'another-secret-that-is-at-least-32-bytes' })));
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    const outcome = client.publish('orders.unauthorized', { seq: 1 }).then(
      () => 'published',
      (error: unknown) => error,
    );
    // Rejected before any new socket: it has already settled once the next login connects.
    good = true;
    client.reconnect();
    await waitFor(() => client.state === 'connected', { message: 'connected with the next login' });
    expect(await Promise.race([outcome, Promise.resolve('still pending')])).toBeInstanceOf(SessionEndedError);
  });

  it('types the documents it sends (codegen)', () => {
    expect(documents.TributaryRefreshAuthDocument.definitions[0]).toMatchObject({ kind: 'OperationDefinition', operation: 'mutation' });
  });
});
