/**
 * The slow-consumer bound of one socket (`SocketWriter`), over a real WebSocket on loopback: a
 * message larger than the bound alone — a CDC row, a document's diff: no payload limit sizes them
 * — is written whole, and the next message found it still queued and cut a client that reads
 * (1006 at the client), which resumed and was cut again at the same message. The bound leaves
 * room for the largest message sent; a client that stops reading is still cut.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { SocketWriter } from '../../src/server/ws/socket-writer.ts';
import { deferred } from '../helpers/wait-for.ts';

const BOUND = 64 * 1024;

/** A server socket wrapped in a SocketWriter bounded at BOUND, and a client on it (reading unless paused). */
async function socketPair() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const accepted = deferred<WebSocket>();
  server.on('connection', (socket) => accepted.resolve(socket));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { maxPayload: 256 * 1024 * 1024 });
  onTestFinished(() => client.terminate());
  const received: string[] = [];
  const closed = deferred<number>();
  const third = deferred<void>();
  client.on('message', (data: Buffer) => {
    if (received.push(data.toString()) === 3) third.resolve();
  });
  client.on('close', (code) => closed.resolve(code));
  const socket = await accepted.promise;
  let overflows = 0;
  const writer = new SocketWriter(socket, undefined, BOUND, () => (overflows += 1));
  return { writer, client, received, third: third.promise, closed: closed.promise, overflows: () => overflows };
}

describe('a socket writer', () => {
  it('sends a message larger than its bound and the ones after it to a client that reads', async () => {
    const { writer, received, third, closed, overflows } = await socketPair();
    const large = 'x'.repeat(32 * 1024 * 1024);
    writer.send(large);
    writer.send('small 1');
    writer.send('small 2');
    await Promise.race([third, closed.then((code) => Promise.reject(new Error(`the socket was closed (${code}) after ${received.length} messages`)))]);
    expect(received.map((message) => message.length)).toEqual([large.length, 7, 7]);
    expect(overflows()).toBe(0);
  });

  it('still cuts a client that stops reading once more than the bound and its largest message are queued', async () => {
    const { writer, client, closed, overflows } = await socketPair();
    client.pause();
    const message = 'y'.repeat(16 * 1024);
    for (let sent = 0; sent < 4096 && overflows() === 0; sent += 1) writer.send(message);
    expect(overflows()).toBe(1);
    client.resume();
    expect(await closed).toBe(1006);
  });
});
