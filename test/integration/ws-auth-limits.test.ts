/**
 * What a socket's token allows at the edges: a key set that cannot be fetched is "try again"
 * (HTTP 503, close 1013), not "invalid"; ping refreshes run one at a time per socket; a token past
 * its expiry, during WS_TOKEN_EXPIRY_GRACE_MS, is good for its own refresh only.
 */
import { describe, expect, it } from 'vitest';
import { signHs256, startKeySetServer, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, openSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

describe('socket authentication at its limits', () => {
  it('answers UNAVAILABLE (HTTP 503, close 1013) while the key set cannot be fetched, not UNAUTHENTICATED (4403, which clients give up on)', async () => {
    const keys = await startKeySetServer();
    const server = await startTestServer({ JWT_JWKS_URL: keys.url });
    const token = await keys.sign('RS256', { sub: 'patient' });
    keys.failWith(503);

    const { status, body } = await postGraphQL(server.graphqlUrl, { query: '{ viewer { subject } }' }, { authorization: `Bearer ${token}` });
    expect(status).toBe(503);
    expect(body.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAVAILABLE']);

    const refused = await openSocket(server.wsUrl);
    refused.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    expect(await refused.closed()).toEqual({ code: 1013, reason: expect.stringMatching(/^Try again later: .*key set/) as unknown });
  });

  it('verifies one ping refresh at a time per socket and answers the pings sent meanwhile RATE_LIMITED', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'pinger' }));
    const fresh = await signHs256({ sub: 'pinger' }, { expiresInSeconds: 7200 });
    const pings = 20;
    // One TCP write: the server reads the pings together, before the first verification can end.
    const transport = (client.socket as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    transport.cork();
    for (let index = 0; index < pings; index += 1) client.send({ type: 'ping', payload: { token: fresh } });
    transport.uncork();

    const pongs: ReceivedMessage[] = [];
    while (pongs.length < pings) pongs.push(await client.nextMessage());
    expect(pongs.every((pong) => pong.type === 'pong')).toBe(true);
    const refreshed = pongs.filter((pong) => (pong.payload as { tokenExpiresAt?: string }).tokenExpiresAt !== undefined);
    const limited = pongs.filter((pong) => (pong.payload as { error?: string }).error === 'RATE_LIMITED');
    expect(refreshed.length).toBeGreaterThan(0);
    expect(limited.length).toBeGreaterThan(0);
    expect(refreshed.length + limited.length).toBe(pings);
  });

  it('lets a socket whose token has expired run refreshAuth only during its grace period', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_TOKEN_EXPIRY_GRACE_MS: '60000' });
    // Expired 2 s ago: within the verifier's clock tolerance (5 s), so the socket is acknowledged.
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'late', roles: ['admin'] }, { expiresInSeconds: -2 }));

    client.send({ id: 'p', type: 'subscribe', payload: { query: 'mutation { publish(topic: "orders", type: "order.created", payload: {}) { id } }' } });
    expect(await client.waitForMessage((message) => message.id === 'p')).toEqual({
      id: 'p',
      type: 'error',
      payload: [expect.objectContaining({ message: 'Token expired: send refreshAuth with a new token first', extensions: { code: 'UNAUTHENTICATED' } })],
    });

    const fresh = await signHs256({ sub: 'late', roles: ['admin'] });
    client.send({ id: 'r', type: 'subscribe', payload: { query: 'mutation($t: String!) { refreshAuth(token: $t) { stoppedSubscriptions } }', variables: { t: fresh } } });
    expect(await client.waitForMessage((message) => message.id === 'r')).toEqual({ id: 'r', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 0 } } } });

    client.send({ id: 'v', type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.waitForMessage((message) => message.id === 'v')).toEqual({ id: 'v', type: 'next', payload: { data: { viewer: { subject: 'late' } } } });
  });
});
