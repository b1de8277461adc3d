/**
 * Redis that stops answering while its connections stay open (a partition, a dead NAT entry, a
 * paused Redis): ioredis still reports `ready`, so nothing fails fast. Every operation that waits
 * on the command connection must still answer — UNAVAILABLE, retry shortly — instead of holding
 * its HTTP request, its socket's operation slot or the router's per-entity queue until TCP gives
 * up (README: "While Redis is unreachable, a broadcast and a join answer UNAVAILABLE"; "its log
 * unreadable … ends with UNAVAILABLE"). No timing is asserted: before the bound, these tests
 * never get an answer and run into their timeout.
 */
import { describe, expect, it } from 'vitest';
import { expectErrorCode, publishEvent, waitForSubscribers } from '../helpers/events.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

/** A server whose every Redis connection goes through a proxy the test can silence. */
async function serverBehindProxy(): Promise<{ server: TestServer; proxy: TcpProxy }> {
  const redis = await startPrivateRedis();
  const proxy = await startTcpProxy(redis.port);
  // Each silenced command fails after 1 s (REDIS_COMMAND_TIMEOUT_MS; 5 s by default).
  const server = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: uniquePrefix(), REDIS_COMMAND_TIMEOUT_MS: '1000' });
  return { server, proxy };
}

/**
 * Silences Redis for `work`. The proxy swallows what is sent meanwhile (a real partition would
 * deliver it late, in order), so the connections are cut afterwards rather than reopened: replies
 * would no longer match their commands.
 */
async function whileSilent<T>(proxy: TcpProxy, work: () => Promise<T>): Promise<T> {
  proxy.blackhole(true);
  try {
    return await work();
  } finally {
    proxy.dropAll();
  }
}

const UNAVAILABLE: unknown = expect.objectContaining({ message: expect.stringMatching(/retry shortly/) as unknown, extensions: expect.objectContaining({ code: 'UNAVAILABLE' }) as unknown });

describe('operations on the command connection while Redis does not answer', () => {
  it('answers a broadcast with UNAVAILABLE', { timeout: 45_000 }, async () => {
    const { server, proxy } = await serverBehindProxy();
    expect((await postGraphQL(server.graphqlUrl, { query: 'mutation { broadcast(channel: "room", event: "up") }' })).body).toEqual({ data: { broadcast: true } });

    const sent = await whileSilent(proxy, () => postGraphQL(server.graphqlUrl, { query: 'mutation { broadcast(channel: "room", event: "lost") }' }));
    expect(sent.body.errors).toEqual([UNAVAILABLE]);
  });

  it('answers a publish, with or without an idempotency key, with UNAVAILABLE', { timeout: 45_000 }, async () => {
    const { server, proxy } = await serverBehindProxy();
    await publishEvent(server, { topic: 'orders', payload: { n: 0 } });

    const [plain, keyed] = await whileSilent(proxy, () =>
      Promise.all([
        postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", payload: { n: 1 }) { id } }' }),
        postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", payload: { n: 2 }, idempotencyKey: "k-1") { id } }' }),
      ]),
    );
    expectErrorCode(plain.body, 'UNAVAILABLE');
    expectErrorCode(keyed.body, 'UNAVAILABLE');
  });

  it('ends a resume on a topic this instance already listens to with UNAVAILABLE', { timeout: 45_000 }, async () => {
    const { server, proxy } = await serverBehindProxy();
    const first = await publishEvent(server, { topic: 'orders', payload: { n: 0 } });
    await publishEvent(server, { topic: 'orders', payload: { n: 1 } });
    // Another subscriber keeps the stream joined: the resume needs no SUBSCRIBE, only the log.
    const listener = await openAcknowledgedSocket(server.wsUrl);
    listener.send({ id: 'live', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id } }' } });
    await waitForSubscribers(server, 1);

    const resumer = await openAcknowledgedSocket(server.wsUrl);
    const answer = await whileSilent(proxy, () => {
      resumer.send({ id: 'r', type: 'subscribe', payload: { query: `subscription { events(topic: "orders", after: "${first.cursor}") { id } }` } });
      return resumer.waitForMessage((message) => message.id === 'r');
    });
    expect(answer).toEqual({ id: 'r', type: 'error', payload: [UNAVAILABLE] });
  });

  it('answers a sync document write with UNAVAILABLE', { timeout: 45_000 }, async () => {
    const { server, proxy } = await serverBehindProxy();
    const create = 'mutation { createDocument(service: "boards", id: "b1", data: { title: "a" }) { revision } }';
    expect((await postGraphQL(server.graphqlUrl, { query: create })).body).toEqual({ data: { createDocument: { revision: 1 } } });

    const merged = await whileSilent(proxy, () =>
      postGraphQL(server.graphqlUrl, { query: 'mutation { mergeDocument(service: "boards", id: "b1", patch: { title: "b" }, expectedRevision: 1) { revision } }' }),
    );
    expectErrorCode(merged.body, 'UNAVAILABLE');
  });
});
