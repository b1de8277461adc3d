/**
 * Connections that never get going. A socket whose upgrade is never answered (a proxy that takes
 * the TCP connection and goes quiet) is given up after `connectTimeoutMs` and tried again —
 * graphql-ws times the acknowledgement only from the socket's open, so it waited for ever. A URL
 * the WebSocket constructor refuses is refused where the client is made: it made graphql-ws's
 * connection attempt throw unobserved, and `close()` never ended.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { expect, it, onTestFinished } from 'vitest';
import { createClient, subscribeModel } from '@tributary/client';

it('gives up a socket whose upgrade is never answered after connectTimeoutMs, reports it and connects again', async () => {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
    server.emit('taken', sockets.length);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  const secondConnection = new Promise<void>((resolve) => server.on('taken', (count: number) => count === 2 && resolve()));
  const errors: unknown[] = [];
  const reported = new Promise<void>((resolve) => {
    const subscription = subscribeModel({ url, token: 'x.e30.y', model: 'contacts', connectTimeoutMs: 200, maxRetryDelayMs: 50, onChange: () => {}, onError: (error) => (errors.push(error), resolve()) });
    onTestFinished(() => subscription.close());
  });
  await reported;
  await secondConnection;
  expect(errors.length).toBeGreaterThan(0);
});

it('refuses a URL that is not an absolute WebSocket URL where the client is made', () => {
  for (const url of ['wss//tributary.example/graphql', '/graphql', 'ftp://tributary.example/graphql']) {
    expect(() => subscribeModel({ url, token: 'x.e30.y', model: 'contacts', onChange: () => {} })).toThrow(TypeError);
    expect(() => createClient({ url, getToken: () => 'x.e30.y' })).toThrow(/url must be an absolute ws:\/\/ or wss:\/\/ URL/);
  }
});
