/**
 * Channels while Redis is away, against a real Redis stopped under a running server: `broadcast`
 * and a `channel` join answer UNAVAILABLE (retry shortly) as `publish` and `events` do — not a
 * masked internal error, and not a join left waiting for a SUBSCRIBE that the subscriber
 * connection's offline queue would hold until Redis returns — and both work again once it is back.
 */
import { describe, expect, it } from 'vitest';
import { waitUntilReady } from '../helpers/events.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { captureLogs, postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

const join = (client: RawSocket, id: string) =>
  client.send({ id, type: 'subscribe', payload: { query: 'subscription { channel(name: "room") { event data } }' } });

const broadcast = (server: TestServer, event: string) =>
  postGraphQL(server.graphqlUrl, { query: `mutation { broadcast(channel: "room", event: "${event}") }` });

describe('channels while Redis is down', () => {
  it('answers broadcast (HTTP 503) and a channel join with UNAVAILABLE, logs no internal error, and delivers again once Redis is back', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const logs = captureLogs();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'warn' }, { logDestination: logs });
    const client = await openAcknowledgedSocket(server.wsUrl);

    await redis.stop();
    await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 503, { message: 'the server saw Redis go' });

    const sent = await broadcast(server, 'lost');
    expect(sent.status).toBe(503);
    expect(sent.body).toEqual({
      data: null,
      errors: [expect.objectContaining({ message: expect.stringMatching(/retry shortly/) as unknown, extensions: { code: 'UNAVAILABLE' } })],
    });

    // Refused as a refused join is (FORBIDDEN): the one result, with the error, then complete.
    join(client, 'down');
    expect(await client.nextMessage()).toEqual({
      id: 'down',
      type: 'next',
      payload: { errors: [expect.objectContaining({ message: expect.stringMatching(/retry shortly/) as unknown, extensions: { code: 'UNAVAILABLE' } })] },
    });
    expect(await client.nextMessage()).toEqual({ id: 'down', type: 'complete' });
    expect(server.stats().channelMembers).toBe(0);
    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);

    // Back: the failed join left nothing behind, so a new one subscribes for real. The subscriber
    // connection may come back after the command one: a refused join is retried, as a client
    // would, and a broadcast is repeated until the member hears one (channels are at-most-once:
    // one sent while its SUBSCRIBE is on the way is not heard).
    await redis.start();
    await waitUntilReady(server);
    const refused = (message: ReceivedMessage) => Object.hasOwn(message.payload as object, 'errors');
    let attempt = 0;
    let joined: ReceivedMessage | undefined;
    while (joined === undefined) {
      attempt += 1;
      const id = `up-${attempt}`;
      join(client, id);
      // waitFor resolves with the probe's first truthy answer: never undefined.
      const answer = (await waitFor(
        async () => {
          expect((await broadcast(server, 'back')).body).toEqual({ data: { broadcast: true } });
          return client.pending.find((message) => message.id === id);
        },
        { timeoutMs: 15_000, message: 'the join after the outage was answered' },
      ))!;
      if (refused(answer)) expect(answer.payload).toEqual({ errors: [expect.objectContaining({ extensions: { code: 'UNAVAILABLE' } })] });
      else joined = answer;
    }
    expect(joined).toEqual({ id: `up-${attempt}`, type: 'next', payload: { data: { channel: { event: 'back', data: null } } } });
    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});
