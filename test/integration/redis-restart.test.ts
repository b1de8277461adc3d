/**
 * A Redis that keeps its data (append-only file) restarting under a live subscription: the
 * subscription continues with nothing lost, and writes during the outage fail loudly.
 */
import { describe, expect, it } from 'vitest';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

async function publish(server: TestServer, n: number) {
  return postGraphQL(server.graphqlUrl, { query: `mutation { publish(topic: "ticks", payload: { n: ${n} }) { id } }` });
}

async function receive(client: RawSocket, count: number): Promise<number[]> {
  const seen: number[] = [];
  while (seen.length < count) {
    const message = await client.nextMessage();
    expect(message, JSON.stringify(message)).toMatchObject({ type: 'next' });
    seen.push((message.payload as { data: { events: { payload: { n: number } } } }).data.events.payload.n);
  }
  return seen;
}

describe('Redis restart under a live subscription', () => {
  it('keeps delivering after a persistent Redis restarts, with every event once and in order', async () => {
    const redis = await startPrivateRedis({ persistent: true });
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'e', type: 'subscribe', payload: { query: 'subscription { events(topic: "ticks") { payload } }' } });
    await waitFor(() => server.stats().subscribers === 1);

    for (let n = 1; n <= 5; n += 1) expect((await publish(server, n)).body.errors).toBeUndefined();
    expect(await receive(client, 5)).toEqual([1, 2, 3, 4, 5]);

    await redis.stop();
    const refused = await publish(server, 99);
    expect(refused.body.errors?.[0]?.extensions?.['code']).toBe('UNAVAILABLE');

    await redis.start();
    await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 200, { timeoutMs: 15_000, message: 'ready again' });
    // The bus re-subscribes on its own connection; publish until the first event after the
    // restart arrives, then the rest must follow in order.
    for (let n = 6; n <= 10; n += 1) {
      await waitFor(async () => !(await publish(server, n)).body.errors, { timeoutMs: 15_000, message: `publish ${n}` });
    }
    expect(await receive(client, 5)).toEqual([6, 7, 8, 9, 10]);
  });
});
