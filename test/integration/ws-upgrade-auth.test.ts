/**
 * A token on the WebSocket upgrade request itself (seed 004: `wss://…/v1/ws` with
 * `Authorization: Bearer <access_token>`), for clients that can set headers (services; browsers
 * cannot): used when `connection_init` carries no token, with the same verification, expiry,
 * refresh and tenant rules; `connection_init`'s token wins when both are sent. And the upgrade
 * path `/ws` beside `/graphql`, with the same rules, the development-mode guard included.
 */
import { createClient } from 'graphql-ws';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { signHs256, TEST_SECRET, type TokenClaims } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const REFRESH = 'mutation($t: String!) { refreshAuth(token: $t) { stoppedSubscriptions } }';
const SERVICE: TokenClaims = { sub: 'service-1', tenant: 'tenant-a' };

interface Received {
  readonly type: string;
  readonly id?: string;
  readonly payload?: unknown;
}

/** A socket opened with upgrade headers: what it received and how it ended (close, or an HTTP refusal). */
interface HeaderSocket {
  send(message: object): void;
  next(): Promise<Received>;
  readonly ended: Promise<{ close?: { code: number; reason: string }; httpStatus?: number }>;
}

function openWithHeaders(url: string, headers: Record<string, string>): HeaderSocket {
  const socket = new WebSocket(url, GRAPHQL_TRANSPORT_WS_PROTOCOL, { headers });
  onTestFinished(() => socket.terminate());
  const received: Received[] = [];
  const waiting: ((message: Received) => void)[] = [];
  const opened = new Promise<void>((resolve) => socket.once('open', () => resolve()));
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString('utf8')) as Received;
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else received.push(message);
  });
  socket.on('error', () => undefined);
  const ended = new Promise<{ close?: { code: number; reason: string }; httpStatus?: number }>((resolve) => {
    socket.once('close', (code, reason) => resolve({ close: { code, reason: reason.toString() } }));
    socket.once('unexpected-response', (_request, response) => {
      resolve({ httpStatus: response.statusCode ?? 0 });
      response.resume();
    });
  });
  return {
    send: (message) => void opened.then(() => socket.send(JSON.stringify(message))),
    next: () => {
      const queued = received.shift();
      if (queued) return Promise.resolve(queued);
      return Promise.race([
        new Promise<Received>((resolve) => waiting.push(resolve)),
        ended.then((end) => Promise.reject(new Error(`socket ended first: ${JSON.stringify(end)}`))),
      ]);
    },
    ended,
  };
}

/** Sends `connection_init` with `payload` and waits for its answer. */
async function init(client: HeaderSocket, payload?: Record<string, unknown>): Promise<Received> {
  client.send(payload === undefined ? { type: 'connection_init' } : { type: 'connection_init', payload });
  return client.next();
}

async function viewer(client: HeaderSocket, fields = 'subject tenant'): Promise<unknown> {
  client.send({ id: 'v', type: 'subscribe', payload: { query: `{ viewer { ${fields} } }` } });
  return (await client.next()).payload;
}

const bearer = (token: string) => `Bearer ${token}`;

describe('a token on the WebSocket upgrade request', () => {
  let server: TestServer;
  let wsPath: string;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { autoDispose: false });
    wsPath = server.wsUrl.replace(/\/graphql$/, '/ws');
    return () => server.dispose();
  });

  it('authenticates a socket whose connection_init carries no token, at /ws and at /graphql', async () => {
    for (const url of [wsPath, server.wsUrl]) {
      const client = openWithHeaders(url, { authorization: bearer(await signHs256(SERVICE)) });
      expect(await init(client)).toEqual({ type: 'connection_ack' });
      expect(await viewer(client)).toEqual({ data: { viewer: { subject: 'service-1', tenant: 'tenant-a' } } });
    }
  });

  it('takes connection_init’s token when both are sent, and does not fall back to the header when that one is refused', async () => {
    const header = bearer(await signHs256({ sub: 'from-header' }));
    const both = openWithHeaders(wsPath, { authorization: header });
    expect(await init(both, { authorization: bearer(await signHs256({ sub: 'from-init' })) })).toEqual({ type: 'connection_ack' });
    expect(await viewer(both, 'subject')).toEqual({ data: { viewer: { subject: 'from-init' } } });

    const refusedInit = openWithHeaders(wsPath, { authorization: header });
    refusedInit.send({ type: 'connection_init', payload: { authorization: bearer(await signHs256({}, { secret: 'another-secret-that-is-also-32-bytes-long!!' })) } });
    expect(await refusedInit.ended).toEqual({ close: { code: 4403, reason: 'Forbidden: Invalid token: signature verification failed' } });
  });

  it('refuses a socket with no token anywhere with 4403, naming both places a token may be sent', async () => {
    const client = openWithHeaders(wsPath, {});
    client.send({ type: 'connection_init', payload: {} });
    const { close } = await client.ended;
    expect(close).toEqual({ code: 4403, reason: 'Forbidden: No token: send {"authorization":"Bearer <token>"} in connection_init or an Authorization header on the upgrade' });
    // It fits a close frame whole (123 bytes of reason, RFC 6455 §5.5).
    expect(Buffer.byteLength(close?.reason ?? '')).toBeLessThanOrEqual(123);
  });

  it('refuses a header token by the rules of an init token, saying where the refused token came from', async () => {
    const other = openWithHeaders(wsPath, { authorization: bearer(await signHs256({}, { secret: 'another-secret-that-is-also-32-bytes-long!!' })) });
    other.send({ type: 'connection_init' });
    expect(await other.ended).toEqual({ close: { code: 4403, reason: 'Forbidden: Invalid token: signature verification failed (upgrade Authorization header)' } });

    const basic = openWithHeaders(wsPath, { authorization: 'Basic dXNlcjpwYXNz' });
    basic.send({ type: 'connection_init' });
    expect(await basic.ended).toEqual({ close: { code: 4403, reason: 'Forbidden: Malformed authorization: expected "Bearer <token>" (upgrade Authorization header)' } });

    const expired = openWithHeaders(wsPath, { authorization: bearer(await signHs256({}, { expiresInSeconds: -60 })) });
    expired.send({ type: 'connection_init' });
    expect(await expired.ended).toEqual({ close: { code: 4419, reason: 'Token expired: reconnect with a new token' } });
  });

  it('lets a socket whose header token expired run refreshAuth over the socket, and keeps its tenant', async () => {
    // Expired 3 s ago: within the 5 s clock tolerance, so acknowledged, and it may only refresh.
    const client = openWithHeaders(wsPath, { authorization: bearer(await signHs256(SERVICE, { expiresInSeconds: -3 })) });
    expect(await init(client)).toEqual({ type: 'connection_ack' });
    client.send({ id: 'v', type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.next()).toMatchObject({ id: 'v', type: 'error', payload: [{ message: 'Token expired: send refreshAuth with a new token first', extensions: { code: 'UNAUTHENTICATED' } }] });

    client.send({ id: 'r', type: 'subscribe', payload: { query: REFRESH, variables: { t: await signHs256(SERVICE, { expiresInSeconds: 3600 }) } } });
    expect(await client.next()).toEqual({ id: 'r', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 0 } } } });
    expect(await client.next()).toEqual({ id: 'r', type: 'complete' });
    expect(await viewer(client)).toEqual({ data: { viewer: { subject: 'service-1', tenant: 'tenant-a' } } });
    expect(await client.next()).toEqual({ id: 'v', type: 'complete' });

    // A token of another tenant is another principal: the socket closes (4412), as for an init token.
    client.send({ id: 'x', type: 'subscribe', payload: { query: REFRESH, variables: { t: await signHs256({ ...SERVICE, tenant: 'tenant-b' }) } } });
    expect((await client.ended).close?.code).toBe(4412);
  });

  it('closes a socket whose header token expires with the retryable 4419; a graphql-ws client whose WebSocket sets the header reconnects with a fresh one', async () => {
    let connects = 0;
    let acknowledged = 0;
    const closes: number[] = [];
    // What a Node service passes graphql-ws: a WebSocket that reads the current token at each connect.
    const tokens = [await signHs256(SERVICE, { expiresInSeconds: -3 }), await signHs256(SERVICE, { expiresInSeconds: 3600 })];
    class BearerWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { authorization: bearer(tokens[Math.min(connects++, 1)]!) } });
      }
    }
    const client = createClient({
      url: wsPath,
      webSocketImpl: BearerWebSocket,
      lazy: false,
      retryAttempts: 3,
      retryWait: () => Promise.resolve(),
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

  it('serves /ws only at that path: another is 404 before any upgrade', async () => {
    const token = bearer(await signHs256(SERVICE));
    expect(await openWithHeaders(`${wsPath}x`, { authorization: token }).ended).toEqual({ httpStatus: 404 });
    expect(await openWithHeaders(`${wsPath}/`, { authorization: token }).ended).toEqual({ httpStatus: 404 });
    const withQuery = openWithHeaders(`${wsPath}?client=orders-service`, { authorization: token });
    expect(await init(withQuery)).toEqual({ type: 'connection_ack' });
  });
});

describe('/ws in development mode', () => {
  it('applies the origin and host guard to /ws as to /graphql', async () => {
    const server = await startTestServer({});
    const { port } = new URL(server.wsUrl);
    for (const path of ['/ws', '/graphql']) {
      const url = `ws://127.0.0.1:${port}${path}`;
      expect(await openWithHeaders(url, { origin: 'https://evil.example' }).ended).toEqual({ httpStatus: 403 });
      expect(await openWithHeaders(url, { host: `rebound.example:${port}` }).ended).toEqual({ httpStatus: 403 });
      const own = openWithHeaders(url, { origin: `http://127.0.0.1:${port}` });
      expect(await init(own)).toEqual({ type: 'connection_ack' });
      expect(await viewer(own, 'subject')).toEqual({ data: { viewer: { subject: 'development' } } });
    }
  });
});
