/**
 * Connection limits: a principal (app, env, tenant, subject) holds at most
 * WS_MAX_CONNECTIONS_PER_SUBJECT acknowledged sockets on an instance (more are closed with 1013,
 * which graphql-ws clients retry), and an instance accepts at most WS_MAX_CONNECTIONS sockets
 * (more are refused at the upgrade with HTTP 503 once acknowledged sockets hold every place; a
 * place held by a socket still waiting for its connection_init is taken over instead, see
 * ws-preinit-sockets.test.ts).
 */
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, createClient } from 'graphql-ws';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, openSocket, type RawSocket } from '../helpers/ws-client.ts';

async function refusedCount(server: TestServer, limit: 'instance' | 'subject'): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((entry) => entry.startsWith(`tributary_connections_refused_total{limit="${limit}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

async function closeAndWait(server: TestServer, socket: RawSocket, remaining: number): Promise<void> {
  socket.socket.close(1000, 'bye');
  await socket.closed();
  await waitFor(() => server.stats().connections === remaining, { message: `the server holds ${remaining} sockets` });
}

describe('connection limits', () => {
  it('closes a principal’s socket beyond WS_MAX_CONNECTIONS_PER_SUBJECT with 1013; other principals and freed places are not affected', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS_PER_SUBJECT: '2' });
    const tabs = await signHs256({ sub: 'tabs', tenant: 'tenant-a' });
    const first = await openAcknowledgedSocket(server.wsUrl, tabs);
    await openAcknowledgedSocket(server.wsUrl, tabs);

    const third = await openSocket(server.wsUrl);
    third.send({ type: 'connection_init', payload: { authorization: `Bearer ${tabs}` } });
    expect(await third.closed()).toEqual({ code: 1013, reason: 'Too many sockets for this subject: try again later' });
    expect(third.pending).toEqual([]);
    expect(await refusedCount(server, 'subject')).toBe(1);

    // The same subject in another tenant, and another subject, are principals of their own.
    await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'tabs', tenant: 'tenant-b' }));
    await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'other', tenant: 'tenant-a' }));

    // A socket that closes gives its place back.
    await closeAndWait(server, first, 3);
    await openAcknowledgedSocket(server.wsUrl, tabs);
    expect(await refusedCount(server, 'subject')).toBe(1);
  });

  it('lets a stock graphql-ws client retry a 1013 until a place is free', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS_PER_SUBJECT: '1' });
    const token = await signHs256({ sub: 'retrier' });
    const holder = await openAcknowledgedSocket(server.wsUrl, token);
    const closeCodes: number[] = [];
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 1000,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 20)),
      on: { closed: (event) => closeCodes.push((event as { code: number }).code) },
    });
    onTestFinished(() => client.dispose());
    // The close codes seen before the answer: the lazy client closes its socket (1000) once the
    // query completed, which can happen before the holder's close is noticed below.
    const answered = new Promise<{ result: unknown; closedBefore: number[] }>((resolve, reject) => {
      client.subscribe(
        { query: '{ viewer { subject } }' },
        { next: (result) => resolve({ result, closedBefore: [...closeCodes] }), error: reject, complete: () => {} },
      );
    });

    await waitFor(() => closeCodes.length > 0, { message: 'the client was refused once' });
    expect(closeCodes[0]).toBe(1013);
    // The holder's place frees up: the client's next retry gets in (the server's socket count is no
    // sign here, the retrying client's own sockets come and go in it).
    holder.socket.close(1000, 'bye');
    await holder.closed();
    const { result, closedBefore } = await answered;
    expect(result).toEqual({ data: { viewer: { subject: 'retrier' } } });
    expect(closedBefore.filter((code) => code !== 1013)).toEqual([]);
  });

  it('refuses an upgrade beyond WS_MAX_CONNECTIONS acknowledged sockets with HTTP 503 (RATE_LIMITED) and accepts one again once a socket closed', async () => {
    const server = await startTestServer({ WS_MAX_CONNECTIONS: '2' });
    // Acknowledged: a socket still waiting for its connection_init would give its place to the third.
    const first = await openAcknowledgedSocket(server.wsUrl);
    await openAcknowledgedSocket(server.wsUrl);
    await waitFor(() => server.stats().connections === 2, { message: 'two sockets held' });

    const refused = await new Promise<{ status: number; retryAfter: string | undefined; body: string }>((resolve, reject) => {
      const socket = new WebSocket(server.wsUrl, GRAPHQL_TRANSPORT_WS_PROTOCOL);
      socket.once('open', () => reject(new Error('the third socket was accepted')));
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'], body }));
      });
      socket.once('error', reject);
    });
    expect(refused.status).toBe(503);
    expect(refused.retryAfter).toBe('5');
    expect(JSON.parse(refused.body)).toEqual({ errors: [{ message: 'This instance holds its limit of 2 sockets', extensions: { code: 'RATE_LIMITED' } }] });
    expect(await refusedCount(server, 'instance')).toBe(1);

    await closeAndWait(server, first, 1);
    const again = await openAcknowledgedSocket(server.wsUrl);
    expect(again.socket.readyState).toBe(WebSocket.OPEN);
  });
});
