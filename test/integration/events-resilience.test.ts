import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  eventOf,
  MODES,
  messagesBeforePong,
  metricValue,
  publishEvent,
  publishMany,
  publishRaw,
  range,
  seqPayloads,
  seqsOf,
  startModeServer,
  startRedisProxy,
  subscribeEvents,
  takeEvents,
  takeUntil,
  waitForSubscribers,
  waitUntilReady,
  type DeliveredEvent,
} from '../helpers/events.ts';
import { startPrivateRedis, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTestServer, postGraphQL } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

const SLOW_METRIC = 'tributary_slow_consumer_closes_total';

/** The client's TCP socket: pausing it stops reading, so the server's outbound buffer grows. */
function tcpOf(client: RawSocket): Socket {
  return (client.socket as unknown as { _socket: Socket })._socket;
}

describe.each(MODES)('slow consumers (%s)', (mode) => {
  it('cuts off a client that stops reading (a slow consumer, 4008), and a fresh client resumes every later event in order', async () => {
    const server = await startModeServer(mode);
    const slow = await openAcknowledgedSocket(server.wsUrl);
    // Many identical subscriptions on one socket: each event queues one ~10 KB frame per subscription,
    // so the 8 MiB bound is crossed after a few dozen events rather than thousands.
    const fanOut = 50;
    for (let i = 0; i < fanOut; i++) subscribeEvents(slow, String(i), { topic: 'firehose' });
    await waitForSubscribers(server, fanOut);
    const closesBefore = await metricValue(server, SLOW_METRIC);
    tcpOf(slow).pause();

    const filler = 'x'.repeat(10_000);
    const published: DeliveredEvent[] = [];
    // Bounded: the socket must be closed long before this many events (~25 MB per 50 events).
    while (server.stats().subscribers > 0 && published.length < 2000) {
      const batch = seqPayloads(published.length + 1, published.length + 10).map((payload) => ({ ...payload, filler }));
      published.push(...(await publishMany(server, 'firehose', batch)));
    }
    expect(server.stats().subscribers).toBe(0);
    expect(await metricValue(server, SLOW_METRIC)).toBe(closesBefore + 1);
    // Events published after the close are for the resuming client too.
    published.push(...(await publishMany(server, 'firehose', seqPayloads(published.length + 1, published.length + 5))));

    // Reading again, the slow client gets what had reached the kernel before its socket was cut, then
    // the connection's end: its 4008 close frame was queued behind the buffer dropped with it.
    tcpOf(slow).resume();
    expect(await slow.closed()).toMatchObject({ code: 1006 });
    const received = slow.pending.filter((message) => message.id === '0').map(eventOf);
    expect(received.length).toBeLessThan(published.length);
    expect(seqsOf(received)).toEqual(range(1, received.length));
    const last = received.at(-1);

    const fresh = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(fresh, 'resume', { topic: 'firehose', after: last?.cursor ?? published[0]?.cursor });
    const resumedFrom = last ? received.length + 1 : 2;
    const resumed = await takeEvents(fresh, 'resume', published.length - resumedFrom + 1);
    expect(seqsOf(resumed)).toEqual(range(resumedFrom, published.length));
    expect(resumed.map((event) => event.id)).toEqual(published.slice(resumedFrom - 1).map((event) => event.id));
  });
});

describe('Redis outages', () => {
  it('never lets a live subscriber silently miss an event when Redis restarts without its data', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'live', { topic: 'orders' });
    await waitForSubscribers(server, 1);
    await publishMany(server, 'orders', seqPayloads(1, 3));
    expect(seqsOf(await takeEvents(client, 'live', 3))).toEqual([1, 2, 3]);

    // The private Redis keeps nothing on disk: the stream, its epoch and its history are gone.
    await redis.stop();
    await redis.start();
    await waitUntilReady(server);
    const after = await publishMany(server, 'orders', seqPayloads(4, 8));

    // Two outcomes are correct, and which one happens depends on which of the server's two
    // connections is back first. Live connection first: it hears every later publish, and the
    // subscription simply goes on. Command connection first: the publishes below may precede the
    // re-subscription, the catch-up finds the history gone, and the subscription ends with
    // RESYNC_REQUIRED. A gap without RESYNC_REQUIRED is the one wrong answer.
    const messages = await takeUntil(client, (message) => message.type !== 'next' || eventOf(message).payload['seq'] === 8);
    const last = messages.at(-1);
    const delivered = messages.filter((message) => message.type === 'next').map(eventOf);
    if (last?.type === 'error') {
      expect(last).toMatchObject({ id: 'live', payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] });
      expect(delivered).toEqual(after.slice(0, delivered.length));
      expect(server.stats().subscribers).toBe(0);
      // Following the instruction works: a subscription in the new history gets what follows.
      subscribeEvents(client, 'again', { topic: 'orders', after: after[0]?.cursor });
      expect(seqsOf(await takeEvents(client, 'again', 4))).toEqual(range(5, 8));
    } else {
      expect(delivered).toEqual(after);
      expect(await messagesBeforePong(client)).toEqual([]);
    }
  });

  it('replays from the log what a live subscriber missed while its live connection to Redis was cut', async () => {
    const { server, proxy, client, subscribedChannels } = await liveSubscriberBehindProxy();
    await publishMany(server, 'orders', seqPayloads(1, 3));
    expect(seqsOf(await takeEvents(client, 'live', 3))).toEqual([1, 2, 3]);

    await cutLiveConnection(proxy, subscribedChannels);
    const missed = await publishMany(server, 'orders', seqPayloads(4, 23));
    proxy.allow('subscriber');
    await waitFor(async () => (await subscribedChannels()) === 1, { timeoutMs: 15_000, message: 're-subscribed' });

    // What was published during the cut comes from the log, then live delivery goes on: in order, once.
    expect(await takeEvents(client, 'live', missed.length)).toEqual(missed);
    await publishMany(server, 'orders', seqPayloads(24, 30));
    expect(seqsOf(await takeEvents(client, 'live', 7))).toEqual(range(24, 30));
    expect(await messagesBeforePong(client)).toEqual([]);
  });

  it('replays more than a socket may hold of what a live subscriber missed while its live connection was cut, at the pace it reads', async () => {
    const { server, proxy, client, subscribedChannels } = await liveSubscriberBehindProxy();
    await publishMany(server, 'orders', seqPayloads(1, 1));
    expect(seqsOf(await takeEvents(client, 'live', 1))).toEqual([1]);

    await cutLiveConnection(proxy, subscribedChannels);
    // 200 events of 50 KB: 10 MB, past the 8 MiB a socket may hold, only in the log.
    const blob = 'x'.repeat(50_000);
    const missed = await publishMany(server, 'orders', range(2, 201).map((seq) => ({ seq, blob })));
    proxy.allow('subscriber');
    await waitFor(async () => (await subscribedChannels()) === 1, { timeoutMs: 15_000, message: 're-subscribed' });

    const replayed = await takeEvents(client, 'live', missed.length);
    expect(replayed.map((event) => event.id)).toEqual(missed.map((event) => event.id));
    await publishMany(server, 'orders', seqPayloads(202, 202));
    expect(seqsOf(await takeEvents(client, 'live', 1))).toEqual([202]);
    expect(await messagesBeforePong(client)).toEqual([]);
  });

  it('hands a live subscriber what another instance published while its Redis link was cut, even when live delivery returns first', async () => {
    const redis = await startPrivateRedis();
    const proxy = await startRedisProxy(redis);
    const prefix = uniquePrefix();
    // `cut` reaches Redis through the proxy; `other` shares the streams directly.
    const cut = await startTestServer({ REDIS_URL: proxy.url, REDIS_KEY_PREFIX: prefix });
    const other = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix });
    const admin = new Redis(redis.url);
    onTestFinished(async () => void (await admin.quit()));
    const subscribedChannels = async () => (await admin.pubsub('CHANNELS', `${prefix}*`)).length;

    const client = await openAcknowledgedSocket(cut.wsUrl);
    subscribeEvents(client, 'live', { topic: 'orders' });
    client.send({ id: 'probe', type: 'subscribe', payload: { query: 'subscription { channel(name: "probe") { event } }' } });
    await waitForSubscribers(cut, 1);
    await waitFor(async () => (await subscribedChannels()) === 2, { message: 'the stream and the channel are subscribed' });
    await publishMany(other, 'orders', seqPayloads(1, 3));
    expect(seqsOf(await takeEvents(client, 'live', 3))).toEqual([1, 2, 3]);

    proxy.block('command');
    proxy.block('subscriber');
    proxy.drop();
    await waitFor(async () => (await subscribedChannels()) === 0, { message: 'the cut instance is unsubscribed' });
    // Published while `cut` listens to nothing: only the log has it.
    await publishEvent(other, { topic: 'orders', payload: { seq: 4 } });

    // The live connection comes back; the command connection (the log) stays away for now.
    proxy.allow('subscriber');
    await waitFor(async () => (await subscribedChannels()) === 2, { timeoutMs: 15_000, message: 'the cut instance re-subscribed' });
    await publishEvent(other, { topic: 'orders', payload: { seq: 5 } });
    // Same connection, later message: once the broadcast arrives, `cut` has seen seq 5 live.
    await postGraphQL(other.graphqlUrl, { query: 'mutation { broadcast(channel: "probe", event: "after-5") }' });
    const beforeProbe = await takeUntil(client, (message) => message.id === 'probe');

    proxy.allow('command');
    await waitUntilReady(cut);
    await publishEvent(other, { topic: 'orders', payload: { seq: 6 } });
    const rest = await takeUntil(client, (message) => message.type !== 'next' || eventOf(message).payload['seq'] === 6);
    const delivered = [...beforeProbe, ...rest].filter((message) => message.id === 'live');
    const last = delivered.at(-1);
    if (last?.type === 'error') {
      expect(last).toMatchObject({ payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] });
    } else {
      expect(seqsOf(delivered.map(eventOf)), 'seq 4 is only in the log and must come before seq 5').toEqual([4, 5, 6]);
    }
  });

  it('hands a live subscriber what was published while its live connection was cut, even when live events arrive before its catch-up starts', async () => {
    const { server, proxy, client, subscribedChannels } = await liveSubscriberBehindProxy();
    client.send({ id: 'probe', type: 'subscribe', payload: { query: 'subscription { channel(name: "probe") { event } }' } });
    await waitFor(async () => (await subscribedChannels()) === 2, { message: 'the stream and the channel are subscribed' });
    await publishMany(server, 'orders', seqPayloads(1, 3));
    expect(seqsOf(await takeEvents(client, 'live', 3))).toEqual([1, 2, 3]);

    // Only the live connection is cut; the log stays reachable throughout.
    await cutLiveConnection(proxy, subscribedChannels);
    await publishEvent(server, { topic: 'orders', payload: { seq: 4 } });

    // It comes back and re-subscribes; its PING (after which the catch-up starts) is held back,
    // as a slow network would, while another event is published live.
    proxy.holdSubscriberPings(true);
    proxy.allow('subscriber');
    await waitFor(async () => (await subscribedChannels()) === 2, { timeoutMs: 15_000, message: 're-subscribed' });
    await publishEvent(server, { topic: 'orders', payload: { seq: 5 } });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { broadcast(channel: "probe", event: "after-5") }' });
    const beforeProbe = await takeUntil(client, (message) => message.id === 'probe');
    proxy.holdSubscriberPings(false);

    await publishEvent(server, { topic: 'orders', payload: { seq: 6 } });
    const rest = await takeUntil(client, (message) => message.type !== 'next' || eventOf(message).payload['seq'] === 6);
    const delivered = [...beforeProbe, ...rest].filter((message) => message.id === 'live');
    if (delivered.at(-1)?.type === 'error') {
      expect(delivered.at(-1)).toMatchObject({ payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] });
    } else {
      expect(seqsOf(delivered.map(eventOf)), 'seq 4 is only in the log and must come before seq 5').toEqual([4, 5, 6]);
    }
  });

  it('answers publish with an error while Redis is down, not with a silent success', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
    await publishEvent(server, { topic: 'orders', payload: { seq: 1 } });

    await redis.stop();
    const { body } = await publishRaw(server, { topic: 'orders', payload: { seq: 2 } });
    expect(body.errors?.length).toBe(1);
    expect(body.errors?.[0]?.extensions?.['code']).toBe('UNAVAILABLE');
    expect(body.data?.['publish'] ?? null).toBeNull();
    expect((await fetch(`${server.url}/ready`)).status).toBe(503);

    await redis.start();
    await waitUntilReady(server);
    await publishEvent(server, { topic: 'orders', payload: { seq: 3 } });
  });
});

describe('two instances sharing one Redis', () => {
  const startPair = async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    return Promise.all([startTestServer(env), startTestServer(env)]);
  };

  it('delivers an event published on one instance to a subscriber of the other', async () => {
    const [a, b] = await startPair();
    const client = await openAcknowledgedSocket(a.wsUrl);
    subscribeEvents(client, 's', { topic: 'orders' });
    await waitForSubscribers(a, 1);
    const published = await publishEvent(b, { topic: 'orders', payload: { seq: 1 } });
    expect((await takeEvents(client, 's', 1))[0]).toEqual(published);

    // And the cursor from one instance resumes on the other.
    const more = await publishMany(a, 'orders', seqPayloads(2, 4));
    const resumed = await openAcknowledgedSocket(b.wsUrl);
    subscribeEvents(resumed, 'r', { topic: 'orders', after: published.cursor });
    expect(await takeEvents(resumed, 'r', 3)).toEqual(more);
  });

  it('gives subscribers on both instances the same 100 events in the same log order when publishes alternate', async () => {
    const [a, b] = await startPair();
    const onA = await openAcknowledgedSocket(a.wsUrl);
    const onB = await openAcknowledgedSocket(b.wsUrl);
    subscribeEvents(onA, 's', { topic: 'orders' });
    subscribeEvents(onB, 's', { topic: 'orders' });
    await waitForSubscribers(a, 1);
    await waitForSubscribers(b, 1);
    const marker = await publishEvent(a, { topic: 'orders', payload: { seq: 0 } });

    // Four publishers at once, each alternating between the instances: the log decides the order.
    const published: DeliveredEvent[] = [];
    await Promise.all(
      range(0, 3).map(async (lane) => {
        for (let i = lane; i < 100; i += 4) {
          published.push(await publishEvent(i % 2 === 0 ? a : b, { topic: 'orders', payload: { seq: i + 1 } }));
        }
      }),
    );
    const [fromA, fromB] = await Promise.all([takeEvents(onA, 's', 101), takeEvents(onB, 's', 101)]);
    expect(fromA).toEqual(fromB);
    expect(fromA[0]).toEqual(marker);
    expect(new Set(seqsOf(fromA.slice(1)))).toEqual(new Set(range(1, 100)));
    expect(new Set(fromA.map((event) => event.id))).toEqual(new Set([marker, ...published].map((event) => event.id)));

    // The log order, read back by a resume on either instance, is the order both received.
    const reader = await openAcknowledgedSocket(b.wsUrl);
    subscribeEvents(reader, 'log', { topic: 'orders', after: marker.cursor });
    expect(await takeEvents(reader, 'log', 100)).toEqual(fromA.slice(1));
  });

  it('delivers a channel broadcast sent on one instance to members on the other', async () => {
    const [a, b] = await startPair();
    const member = await openAcknowledgedSocket(a.wsUrl);
    member.send({ id: 'c', type: 'subscribe', payload: { query: 'subscription { channel(name: "room:1") { channel event data } }' } });
    await waitFor(() => a.stats().channelMembers === 1, { message: 'joined the channel' });

    const sent = await postGraphQL(b.graphqlUrl, { query: 'mutation { broadcast(channel: "room:1", event: "hello", data: { n: 1 }) }' });
    expect(sent.body).toEqual({ data: { broadcast: true } });
    const message: ReceivedMessage = await member.nextMessage();
    expect(message).toEqual({ id: 'c', type: 'next', payload: { data: { channel: { channel: 'room:1', event: 'hello', data: { n: 1 } } } } });
  });
});

/** A server reaching a private Redis through a proxy, with one live subscriber of `orders` on it. */
async function liveSubscriberBehindProxy() {
  const redis = await startPrivateRedis();
  const proxy = await startRedisProxy(redis);
  const prefix = uniquePrefix();
  const server = await startTestServer({ REDIS_URL: proxy.url, REDIS_KEY_PREFIX: prefix });
  const admin = new Redis(redis.url);
  onTestFinished(async () => void (await admin.quit()));
  const subscribedChannels = async () => (await admin.pubsub('CHANNELS', `${prefix}*`)).length;
  const client = await openAcknowledgedSocket(server.wsUrl);
  subscribeEvents(client, 'live', { topic: 'orders' });
  await waitForSubscribers(server, 1);
  return { server, proxy, client, subscribedChannels };
}

/** Only the SUBSCRIBE connection goes: Redis keeps its data and the server can still append. */
async function cutLiveConnection(proxy: Awaited<ReturnType<typeof startRedisProxy>>, subscribedChannels: () => Promise<number>): Promise<void> {
  proxy.block('subscriber');
  proxy.drop('subscriber');
  await waitFor(async () => (await subscribedChannels()) === 0, { message: 'the live connection is gone' });
}
