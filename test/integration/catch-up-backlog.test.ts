/**
 * Resuming after a backlog larger than what a socket may hold (WS 8 MiB): the log hands pages
 * over far faster than a socket sends them, so the replay goes at the pace the client reads,
 * and only live traffic decides that a client is too slow.
 */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  eventOf,
  MODES,
  messagesBeforePong,
  metricValue,
  publishMany,
  range,
  seqPayloads,
  seqsOf,
  startModeServer,
  subscribeEvents,
  takeEvents,
  waitForSubscribers,
} from '../helpers/events.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const SLOW_METRIC = 'tributary_slow_consumer_closes_total';

/** The client's TCP socket: pausing it stops reading, so the server's outbound buffer grows. */
function tcpOf(client: RawSocket): Socket {
  return (client.socket as unknown as { _socket: Socket })._socket;
}

/** `count` payloads `{ seq, blob }` of about `bytes` each, from seq 1. */
function heavyPayloads(count: number, bytes: number): { seq: number; blob: string }[] {
  const blob = 'x'.repeat(bytes);
  return range(1, count).map((seq) => ({ seq, blob }));
}

describe.each(MODES)('catch-up of a backlog past the socket bound (%s)', (mode) => {
  it('replays 10 MB to a client that stops reading for a while, then goes on live with no gap and no duplicate', async () => {
    const server = await startModeServer(mode);
    const backlog = await publishMany(server, 'orders', heavyPayloads(200, 50_000));
    const client = await openAcknowledgedSocket(server.wsUrl);
    // Not reading while the replay starts: it must wait for the client, not close it.
    tcpOf(client).pause();
    subscribeEvents(client, 'resume', { topic: 'orders', after: backlog[0]?.cursor });
    await waitForSubscribers(server, 1);
    // Live while the replay waits: held for it, delivered after the log's events.
    await publishMany(server, 'orders', seqPayloads(201, 205));
    tcpOf(client).resume();

    expect(seqsOf(await takeEvents(client, 'resume', 204))).toEqual(range(2, 205));
    await publishMany(server, 'orders', seqPayloads(206, 206));
    expect(seqsOf(await takeEvents(client, 'resume', 1))).toEqual([206]);
    expect(await messagesBeforePong(client)).toEqual([]);
  });

  it('replays a backlog of two pages, 10.8 MB in all, to a client that reads', async () => {
    const server = await startModeServer(mode);
    // 600 events of 18 KB: a first page of the log (500 events) alone is past the bound.
    const backlog = await publishMany(server, 'orders', heavyPayloads(600, 18_000));
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'resume', { topic: 'orders', after: backlog[0]?.cursor });

    const replayed = await takeEvents(client, 'resume', 599);
    expect(replayed.map((event) => event.id)).toEqual(backlog.slice(1).map((event) => event.id));
    expect(await messagesBeforePong(client)).toEqual([]);
  });
});

describe('catch-up of a client that does not read (memory)', () => {
  it('waits for it without filling its buffer, and lets live traffic cut it off as a slow consumer (4008)', async () => {
    const server = await startModeServer('memory');
    const backlog = await publishMany(server, 'orders', heavyPayloads(200, 50_000));
    const client = await openAcknowledgedSocket(server.wsUrl);
    // Live subscriptions on the same socket: each event queues one ~10 KB frame per subscription.
    const fanOut = 50;
    for (let i = 0; i < fanOut; i++) subscribeEvents(client, String(i), { topic: 'firehose' });
    await waitForSubscribers(server, fanOut);
    const closesBefore = await metricValue(server, SLOW_METRIC);
    tcpOf(client).pause();
    // 10 MB to replay to a client that does not read: the replay waits, with the buffer below the bound.
    subscribeEvents(client, 'resume', { topic: 'orders', after: backlog[0]?.cursor });
    await waitForSubscribers(server, fanOut + 1);

    const filler = 'x'.repeat(10_000);
    let published = 0;
    // Bounded: the socket must be closed long before this many events (~25 MB per 50 events).
    while (server.stats().subscribers > 0 && published < 2000) {
      await publishMany(server, 'firehose', seqPayloads(published + 1, published + 10).map((payload) => ({ ...payload, filler })));
      published += 10;
    }
    expect(server.stats().subscribers).toBe(0);
    expect(await metricValue(server, SLOW_METRIC)).toBe(closesBefore + 1);
    // Reading again, the client gets what had reached the kernel before its socket was cut, then the
    // connection's end (1006: the 4008 close frame was queued behind the buffer dropped with it).
    tcpOf(client).resume();
    expect(await client.closed()).toMatchObject({ code: 1006 });
    const replayed = client.pending.filter((message) => message.id === 'resume').map(eventOf);
    expect(seqsOf(replayed)).toEqual(range(2, replayed.length + 1));
  });
});
