/**
 * Sockets that have not been acknowledged yet (no `connection_init`, or its token not verified
 * yet) cannot lock authenticated clients out of WS_MAX_CONNECTIONS: when the instance is full,
 * a new socket takes the place of the oldest unacknowledged one, which is closed with 4408.
 * Acknowledged sockets are never closed to make room.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, openSocket, type RawSocket } from '../helpers/ws-client.ts';

const EVICTED = { code: 4408, reason: 'Connection initialisation timeout: the instance needed the place' };

/** Runs `{ viewer { subject } }` over the socket and returns its result. */
async function viewerOver(client: RawSocket, id: string): Promise<unknown> {
  client.send({ id, type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
  const next = await client.waitForMessage((message) => message.id === id);
  expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
  return next.payload;
}

/** Opens `count` sockets that never send `connection_init` and waits until the server holds `total` sockets. */
async function openSilent(server: TestServer, count: number, total: number): Promise<RawSocket[]> {
  const sockets: RawSocket[] = [];
  // One after the other, so their age order on the server is the order here.
  for (let i = 0; i < count; i += 1) sockets.push(await openSocket(server.wsUrl));
  await waitFor(() => server.stats().connections === total, { message: `the server holds ${total} sockets` });
  return sockets;
}

/**
 * A WebSocket upgraded by hand over TCP, that never answers a close frame (ws waits 30 s for the
 * answer before it drops such a socket). Resolves once upgraded; `closeFrame` resolves with the
 * code of the first close frame the server sends.
 */
async function openDeaf(server: TestServer): Promise<{ socket: Socket; closeFrame: Promise<number> }> {
  const { hostname, port } = new URL(server.wsUrl);
  const socket = connect(Number(port), hostname);
  onTestFinished(() => void socket.destroy());
  let received = Buffer.alloc(0);
  let upgraded: () => void = () => {};
  let framed: (code: number) => void = () => {};
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    const head = received.indexOf('\r\n\r\n');
    if (head >= 0 && received.subarray(0, 12).toString() === 'HTTP/1.1 101') upgraded();
    // A close frame from the server: 0x88, an unmasked length, then the code (big-endian).
    const frame = head >= 0 ? received.subarray(head + 4) : Buffer.alloc(0);
    if (frame.length >= 4 && frame[0] === 0x88) framed(frame.readUInt16BE(2));
  });
  const closeFrame = new Promise<number>((resolve) => (framed = resolve));
  await new Promise<void>((resolve, reject) => {
    upgraded = resolve;
    socket.once('error', reject);
    socket.write(
      `GET /graphql HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`,
    );
  });
  return { socket, closeFrame };
}

describe('sockets waiting for connection_init at WS_MAX_CONNECTIONS', () => {
  it('lets a client with a valid token in when silent sockets fill the instance, closing the oldest silent one with 4408', async () => {
    // An init timeout far beyond the test's length: no silent socket leaves on its own.
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS: '4', WS_CONNECTION_INIT_TIMEOUT_MS: '60000' });
    // The oldest socket is an acknowledged one: age alone never makes a socket the one to close.
    const member = await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'member' }));
    const silent = await openSilent(server, 3, 4);

    const client = await openSocket(server.wsUrl);
    client.send({ type: 'connection_init', payload: { authorization: `Bearer ${await signHs256({ sub: 'newcomer' })}` } });
    expect(await client.nextMessage()).toEqual({ type: 'connection_ack' });
    expect(await viewerOver(client, 'v1')).toEqual({ data: { viewer: { subject: 'newcomer' } } });

    expect(await silent[0]?.closed()).toEqual(EVICTED);
    expect(silent[0]?.pending).toEqual([]);
    await waitFor(() => server.stats().connections === 4, { message: 'the evicted socket released' });
    expect([silent[1], silent[2]].map((socket) => socket?.socket.readyState)).toEqual([WebSocket.OPEN, WebSocket.OPEN]);

    // Another silent socket takes the place of the next oldest silent one, never an acknowledged one's.
    const late = await openSocket(server.wsUrl);
    expect(await silent[1]?.closed()).toEqual(EVICTED);
    expect(await viewerOver(member, 'v2')).toEqual({ data: { viewer: { subject: 'member' } } });
    expect(await viewerOver(client, 'v3')).toEqual({ data: { viewer: { subject: 'newcomer' } } });
    expect([silent[2], late].map((socket) => socket?.socket.readyState)).toEqual([WebSocket.OPEN, WebSocket.OPEN]);
  });

  it('keeps refusing upgrades with HTTP 503 when every socket is acknowledged', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS: '2', WS_CONNECTION_INIT_TIMEOUT_MS: '60000' });
    const sockets = [
      await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'first' })),
      await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'second' })),
    ];
    await expect(openSocket(server.wsUrl)).rejects.toThrow('Unexpected server response: 503');
    expect(await viewerOver(sockets[0] as RawSocket, 'v')).toEqual({ data: { viewer: { subject: 'first' } } });
    expect(await viewerOver(sockets[1] as RawSocket, 'v')).toEqual({ data: { viewer: { subject: 'second' } } });
  });

  it('frees the place of a socket closed to make room at once, and cuts it when its client never answers the close', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS: '2', WS_CONNECTION_INIT_TIMEOUT_MS: '60000' });
    const deaf = await openDeaf(server);
    const cut = new Promise<void>((resolve) => deaf.socket.once('close', () => resolve()));
    const [silent] = await openSilent(server, 1, 2);
    const first = await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'first' }));
    expect(await deaf.closeFrame).toBe(4408);
    silent?.socket.close(1000, 'bye');

    // The deaf socket holds no place while it closes: a second client gets in beside the first.
    const second = await openAcknowledgedSocket(server.wsUrl, await signHs256({ sub: 'second' }));
    expect(await viewerOver(first, 'v')).toEqual({ data: { viewer: { subject: 'first' } } });
    expect(await viewerOver(second, 'v')).toEqual({ data: { viewer: { subject: 'second' } } });
    // And it is cut rather than left to ws's 30 s closing handshake (sockets past the limit would pile up).
    await cut;
    await waitFor(() => server.stats().connections === 2, { message: 'the deaf socket gone, the two clients held' });
  });
});
