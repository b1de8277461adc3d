/**
 * A server that accepts TCP but never completes the WebSocket handshake (an overloaded server
 * answering late): the client's connect timeout terminates the socket while it is still
 * connecting, and tries again — in Node with `ws`, whose socket then emits an `error` that would
 * kill the process if the client left it without a listener (found by the reconnect benchmark).
 */
import { createServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

describe('connect timeout', () => {
  it('survives terminating sockets that are still connecting, and keeps retrying', async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => {
      socket.on('error', () => {});
      held.push(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of held) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const { port } = silent.address() as { port: number };

    const client = createClient({
      url: `ws://127.0.0.1:${port}/graphql`,
      getToken: () => 'token',
      webSocketImpl: WebSocket,
      connectTimeoutMs: 100,
      backoff: { initialMs: 10, maxMs: 20 },
    });
    onTestFinished(() => client.close());

    // Three handshakes that never finished: two were terminated while connecting, and the process lives on.
    await waitFor(() => held.length >= 3, { timeoutMs: 10_000, message: 'the client retried after its connect timeouts' });
    expect(['connecting', 'reconnecting']).toContain(client.state);
  });
});
