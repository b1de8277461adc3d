/**
 * The authentication matrix over graphql-transport-ws: the token travels in `connection_init`
 * (`{ authorization: 'Bearer …' }`); a refused one closes the socket with 4403 (4419 for an
 * expired one) before any `connection_ack`, and a socket lives no longer than its token.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, startKeySetServer, TEST_SECRET, unsignedToken } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, openSocket, type RawSocket } from '../helpers/ws-client.ts';

const FORBIDDEN = 4403;
const TOKEN_EXPIRED = 4419;

/** Runs `{ viewer { … } }` over the socket and returns its one result. */
async function askViewer(client: RawSocket, id: string, fields: string): Promise<unknown> {
  client.send({ id, type: 'subscribe', payload: { query: `{ viewer { ${fields} } }` } });
  const next = await client.nextMessage();
  expect(next).toMatchObject({ id, type: 'next' });
  expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
  return next.payload;
}

/** Sends `connection_init` with `payload` and returns how the server closed the socket. */
async function refusedInit(server: TestServer, payload: Record<string, unknown>) {
  const client = await openSocket(server.wsUrl);
  client.send({ type: 'connection_init', payload });
  const closed = await client.closed();
  return { closed, received: [...client.pending] };
}

describe('WebSocket authentication with JWT_SECRET', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { autoDispose: false });
    return () => server.dispose();
  });
  // Sockets of the previous test are terminated when it finishes; start from an idle server.
  beforeEach(async () => {
    await waitFor(() => server.stats().connections === 0 && server.stats().channelMembers === 0, {
      message: 'server idle before the test',
    });
  });

  it('acknowledges a valid token and runs operations as its principal', async () => {
    const token = await signHs256({ sub: 'ws-user', tenant: 'tenant-ws' });
    const client = await openAcknowledgedSocket(server.wsUrl, token);

    expect(await askViewer(client, 'v', 'subject tenant')).toEqual({ data: { viewer: { subject: 'ws-user', tenant: 'tenant-ws' } } });
  });

  type InitPayload = Record<string, unknown>;
  it.each<[string, () => InitPayload | Promise<InitPayload>]>([
    ['no authorization', () => ({})],
    ['an unsigned alg:none token', () => ({ authorization: `Bearer ${unsignedToken()}` })],
    ['a token signed with another secret', async () => ({ authorization: `Bearer ${await signHs256({}, { secret: 'another-secret-that-is-also-32-bytes-long!!' })}` })],
    ['a token not valid yet', async () => ({ authorization: `Bearer ${await signHs256({}, { notBeforeInSeconds: 120 })}` })],
    ['an authorization that is not a string', () => ({ authorization: 42 })],
    ['a malformed authorization', () => ({ authorization: 'Basic abc' })],
  ])('closes the socket with 4403 and never acknowledges it for %s', async (_label, makePayload) => {
    const { closed, received } = await refusedInit(server, await makePayload());

    expect(closed.code).toBe(FORBIDDEN);
    expect(closed.reason).toMatch(/^Forbidden/);
    // Nothing at all came before the close: no connection_ack, so no operation could have run.
    expect(received).toEqual([]);
    expect(server.stats().channelMembers).toBe(0);
  });

  it('closes the socket with the retryable 4419 and never acknowledges it for a token expired past the clock tolerance', async () => {
    const { closed, received } = await refusedInit(server, { authorization: `Bearer ${await signHs256({}, { expiresInSeconds: -60 })}` });
    expect(closed).toEqual({ code: TOKEN_EXPIRED, reason: 'Token expired: reconnect with a new token' });
    expect(received).toEqual([]);
  });

  it('acknowledges a token expired within the clock tolerance, as HTTP accepts it', async () => {
    // Expired 2 s ago: the verifier's clock tolerance is 5 s, for HTTP and sockets alike.
    const token = await signHs256({ sub: 'skewed' }, { expiresInSeconds: -2 });
    expect((await postGraphQL(server.graphqlUrl, { query: '{ viewer { subject } }' }, { authorization: `Bearer ${token}` })).status).toBe(200);

    const client = await openAcknowledgedSocket(server.wsUrl, token);
    // Past exp the socket may only refresh (as during WS_TOKEN_EXPIRY_GRACE_MS), and it is not closed before its refresh.
    const fresh = await signHs256({ sub: 'skewed' });
    client.send({ id: 'r', type: 'subscribe', payload: { query: 'mutation($t: String!) { refreshAuth(token: $t) { stoppedSubscriptions } }', variables: { t: fresh } } });
    expect(await client.nextMessage()).toEqual({ id: 'r', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 0 } } } });
    expect(await client.nextMessage()).toEqual({ id: 'r', type: 'complete' });
    expect(await askViewer(client, 'v', 'subject')).toEqual({ data: { viewer: { subject: 'skewed' } } });
  });

  it('tells the socket its token expires soon, then closes it with the retryable 4419 when it does', async () => {
    // exp is whole seconds: now + 2 s rounds down to 1–2 s from now, and the socket is closed at
    // exp plus the verifier's clock tolerance (5 s).
    const token = await signHs256({ permissions: ['expiring.join'] }, { expiresInSeconds: 2 });
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'live', type: 'subscribe', payload: { query: 'subscription { channel(name: "expiring") { event } }' } });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'subscription active' });

    const closed = await client.closed();

    expect(closed.code).toBe(4419);
    expect(closed.reason).toMatch(/expired/i);
    // A notice (the token lives less than WS_TOKEN_EXPIRY_NOTICE_MS: at once), and the subscription
    // got neither a result nor a `complete`: the close is the end.
    expect(client.pending).toEqual([{ type: 'ping', payload: { reason: 'TOKEN_EXPIRING', tokenExpiresAt: expect.any(String) as unknown, expiresInMs: expect.any(Number) as unknown } }]);
    await waitFor(() => server.stats().channelMembers === 0, { message: 'subscription released after the close' });
  });

  it('keeps delivering on a socket whose token is still valid', async () => {
    // The counterpart of the expiry test: a long-lived token is not closed by the expiry timer.
    const token = await signHs256({ tenant: 'tenant-keep', permissions: ['kept.join', 'kept.broadcast'] });
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'live', type: 'subscribe', payload: { query: 'subscription { channel(name: "kept") { event } }' } });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'subscription active' });

    const sent = await postGraphQL(server.graphqlUrl, { query: 'mutation { broadcast(channel: "kept", event: "still-here") }' }, {
      authorization: `Bearer ${token}`,
    });
    expect(sent.body).toEqual({ data: { broadcast: true } });
    expect(await client.nextMessage()).toEqual({ id: 'live', type: 'next', payload: { data: { channel: { event: 'still-here' } } } });
  });
});

describe('WebSocket authentication with JWT_JWKS_URL', () => {
  it('acknowledges an RS256 token from the key set and runs operations as its principal', async () => {
    const keys = await startKeySetServer();
    const server = await startTestServer({ JWT_JWKS_URL: keys.url });
    const client = await openAcknowledgedSocket(server.wsUrl, await keys.sign('RS256', { sub: 'rsa-user' }));

    expect(await askViewer(client, 'v', 'subject tenant')).toEqual({ data: { viewer: { subject: 'rsa-user', tenant: 'tenant-a' } } });
  });

  it('closes the socket with 4403 for an HS256 token when only the key set is configured', async () => {
    const keys = await startKeySetServer();
    const server = await startTestServer({ JWT_JWKS_URL: keys.url });

    const { closed, received } = await refusedInit(server, { authorization: `Bearer ${await signHs256()}` });

    expect(closed.code).toBe(FORBIDDEN);
    expect(received).toEqual([]);
  });
});

describe('WebSocket authentication in development mode', () => {
  it('acknowledges a socket without a token and runs operations as the development principal', async () => {
    const server = await startTestServer();
    const client = await openAcknowledgedSocket(server.wsUrl);

    expect(await askViewer(client, 'v', 'subject app env tenant roles permissions expiresAt')).toEqual({
      data: {
        viewer: { subject: 'development', app: 'default', env: 'default', tenant: 'default', roles: ['admin'], permissions: [], expiresAt: null },
      },
    });
  });
});
