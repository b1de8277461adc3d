/**
 * An answer its client does not read ends its connection (`unreadAnswerTimeoutMs`): Node bounds
 * receiving a request, not sending its answer, and a client that stopped reading kept its answer
 * in the server's memory for as long as it kept the socket open (20 unread `documents` pages held
 * 3.4 GiB). An answer still being worked out when the timeout passes is not cut. The answers here
 * come from a route of the test's own behind `/api/`, large enough not to fit in the loopback
 * connection's buffers.
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createHttpServer } from '../../src/server/http-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

const ANSWER_BYTES = 64 * 1024 * 1024;
const TIMEOUT_MS = 500;

async function serve(handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<number> {
  const server = createHttpServer({
    api: { handle },
    readiness: [],
    metrics: new Registry(),
    logger: createLogger({ level: 'silent' }),
    unreadAnswerTimeoutMs: TIMEOUT_MS,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  return (server.address() as AddressInfo).port;
}

function writeAnswer(response: ServerResponse): void {
  response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': ANSWER_BYTES });
  response.end(Buffer.alloc(ANSWER_BYTES, 'x'));
}

describe('an HTTP answer its client does not read', () => {
  it('destroys the connection once the client has taken none of its queued answer for the timeout', async () => {
    const answered: ServerResponse[] = [];
    const port = await serve((_request, response) => {
      answered.push(response);
      writeAnswer(response);
    });
    const client = connect(port, '127.0.0.1');
    onTestFinished(() => void client.destroy());
    client.on('error', () => {});
    await once(client, 'connect');
    client.write('GET /api/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    // Never reads: the answer stays queued on the server. (The client is told nothing it would
    // read: the kernel still holds what it had taken of the answer, ahead of the end.)
    client.pause();

    await waitFor(() => answered[0]?.socket);
    const socket = answered[0]!.socket!;
    await once(socket, 'close');
    expect(socket.destroyed).toBe(true);
    expect(answered[0]!.writableFinished).toBe(false);
  });

  it('keeps the connection of an answer still being worked out when the timeout passes, and of a client that reads', async () => {
    const port = await serve((request, response) => {
      // Answers only after the socket's timeout has passed with nothing to send.
      void once(request.socket, 'timeout').then(() => writeAnswer(response));
    });
    const response = await fetch(`http://127.0.0.1:${port}/api/slow`);
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBe(ANSWER_BYTES);
  });
});
