/**
 * What a closed socket keeps: a socket closed as a slow consumer is cut at once — its close frame
 * could only wait behind the 8 MiB it was not reading — and a socket's place in its subject's
 * WS_MAX_CONNECTIONS_PER_SUBJECT is given back only when the server no longer holds it, whichever
 * side closed it. A subject can so never hold more sockets than its limit that still take memory
 * (before, every overflowed socket gave its place back at once and stayed, with its buffer, until
 * the keep-alive or ws's closing handshake cut it: one token held 400 sockets and 3 GiB).
 */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { metricValue, publishMany, seqPayloads, subscribeEvents, waitForSubscribers } from '../helpers/events.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, openSocket, type RawSocket } from '../helpers/ws-client.ts';

const SLOW_METRIC = 'tributary_slow_consumer_closes_total';

/** The client's TCP socket: pausing it stops reading, so the server's outbound buffer grows. */
function tcpOf(client: RawSocket): Socket {
  return (client.socket as unknown as { _socket: Socket })._socket;
}

/** Opens a socket with `token` and answers whether the server acknowledged it or closed it (with which code). */
async function connectWith(url: string, token: string): Promise<{ client: RawSocket; answer: 'ack' | number }> {
  const client = await openSocket(url);
  client.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  const first = await client.nextMessage().catch(() => undefined);
  if (first?.type === 'connection_ack') return { client, answer: 'ack' };
  expect(first).toBeUndefined();
  return { client, answer: (await client.closed()).code };
}

describe('sockets closed by the server and their subject’s places', () => {
  it('cuts a slow consumer at once, so the socket its subject opens next takes its place instead of one more', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS_PER_SUBJECT: '1' });
    const token = await signHs256({ sub: 'reader', permissions: ['firehose.read', 'firehose.publish'] });
    const slow = await openAcknowledgedSocket(server.wsUrl, token);
    // Each event queues one ~10 KB frame per subscription: the 8 MiB bound is crossed within a few dozen.
    const fanOut = 50;
    for (let i = 0; i < fanOut; i++) subscribeEvents(slow, String(i), { topic: 'firehose' });
    await waitForSubscribers(server, fanOut);
    const closesBefore = await metricValue(server, SLOW_METRIC);
    tcpOf(slow).pause();

    const filler = 'x'.repeat(10_000);
    // Bounded: the socket must be closed long before this many events (~25 MB per 50 events).
    for (let published = 0; server.stats().subscribers > 0 && published < 2000; published += 10) {
      await publishMany(server, 'firehose', seqPayloads(published + 1, published + 10).map((payload) => ({ ...payload, filler })), token);
    }
    expect(server.stats().subscribers).toBe(0);
    expect(await metricValue(server, SLOW_METRIC)).toBe(closesBefore + 1);

    // The subject's one place: a new socket gets it only once the server holds the slow one no more.
    const next = await connectWith(server.wsUrl, token);
    expect(next.answer).toBe('ack');
    expect(server.stats().connections).toBe(1);

    // The slow client reads again but never answers (what it reads is dropped: no close frame, no
    // pong goes back): only the server ending the TCP connection closes it.
    const tcp = tcpOf(slow);
    tcp.removeAllListeners('data');
    tcp.on('data', () => {});
    tcp.resume();
    await slow.closed();
  });

  it('keeps the place of a socket it closed until the socket is gone, and gives it to the next one then', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_CONNECTIONS_PER_SUBJECT: '1' });
    const token = await signHs256({ sub: 'reader' });
    const closing = await openAcknowledgedSocket(server.wsUrl, token);
    // Not reading: the server's close frame (4400, for the malformed message) waits unread, and the
    // socket stays open on the server, with whatever it had queued, until the closing handshake ends.
    tcpOf(closing).pause();
    closing.send('not a graphql-transport-ws message');

    const refused = await connectWith(server.wsUrl, token);
    expect(refused.answer).toBe(1013);

    // Reading again, the client answers the close frame: the socket is gone, its place free.
    tcpOf(closing).resume();
    expect(await closing.closed()).toMatchObject({ code: 4400 });
    await waitFor(() => server.stats().connections === 0, { message: 'the server let both sockets go' });
    const admitted = await connectWith(server.wsUrl, token);
    expect(admitted.answer).toBe('ack');
  });
});
