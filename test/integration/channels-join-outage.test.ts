/**
 * A join while Redis is away, to a channel another member on this instance already holds: it is
 * refused with UNAVAILABLE exactly as a first join is (README: "While Redis is unreachable … a
 * join answer[s] UNAVAILABLE"). Accepted, the new member would believe itself live while every
 * broadcast passed it by, and the different answer would tell whether someone else on this
 * instance is in the channel. The member that joined before stays a member, is told nothing, and
 * hears the channel again once Redis is back (README: "Members already joined stay members").
 */
import { describe, expect, it } from 'vitest';
import { waitUntilReady } from '../helpers/events.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

const join = (client: RawSocket, id: string, channel: string) =>
  client.send({ id, type: 'subscribe', payload: { query: `subscription { channel(name: "${channel}") { event } }` } });

const broadcast = (server: TestServer, event: string) =>
  postGraphQL(server.graphqlUrl, { query: `mutation { broadcast(channel: "room", event: "${event}") }` });

const UNAVAILABLE: unknown = expect.objectContaining({ message: expect.stringMatching(/retry shortly/) as unknown, extensions: { code: 'UNAVAILABLE' } });

describe('a channel join while Redis is away', () => {
  it('refuses a join to a channel another member on the instance holds with UNAVAILABLE, as a first join; the member already in hears the channel again once Redis is back', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'warn' });
    const member = await openAcknowledgedSocket(server.wsUrl);
    const newcomer = await openAcknowledgedSocket(server.wsUrl);
    join(member, 'held', 'room');
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the first member joined' });
    expect((await broadcast(server, 'before')).body).toEqual({ data: { broadcast: true } });
    expect(await member.nextMessage()).toEqual({ id: 'held', type: 'next', payload: { data: { channel: { event: 'before' } } } });

    await redis.stop();
    await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 503, { message: 'the server saw Redis go' });
    // A first join is refused: the subscriber connection is known to be down.
    join(newcomer, 'first', 'elsewhere');
    expect(await newcomer.nextMessage()).toEqual({ id: 'first', type: 'next', payload: { errors: [UNAVAILABLE] } });
    expect(await newcomer.nextMessage()).toEqual({ id: 'first', type: 'complete' });

    // The same answer for the channel the member holds. Accepted, it would add a second member
    // and answer nothing: wait for either, then say which.
    join(newcomer, 'second', 'room');
    await waitFor(() => newcomer.pending.length > 0 || server.stats().channelMembers > 1, { message: 'the held-channel join was answered or accepted' });
    expect({ members: server.stats().channelMembers, answer: newcomer.pending[0] }).toEqual({
      members: 1,
      answer: { id: 'second', type: 'next', payload: { errors: [UNAVAILABLE] } },
    });
    expect(await newcomer.nextMessage()).toEqual({ id: 'second', type: 'next', payload: { errors: [UNAVAILABLE] } });
    expect(await newcomer.nextMessage()).toEqual({ id: 'second', type: 'complete' });

    // Back: the member was told nothing and still holds the channel. ioredis subscribes it again
    // after reconnecting; a broadcast sent before that lands is not heard (at most once), so
    // one is repeated until the member hears one.
    await redis.start();
    await waitUntilReady(server);
    const heard = await waitFor(
      async () => {
        expect((await broadcast(server, 'after')).body).toEqual({ data: { broadcast: true } });
        return member.pending.find((message: ReceivedMessage) => message.id === 'held');
      },
      { timeoutMs: 15_000, message: 'the member heard the channel after the outage' },
    );
    expect(heard).toEqual({ id: 'held', type: 'next', payload: { data: { channel: { event: 'after' } } } });
    expect(member.pending.every((message) => message.id === 'held' && message.type === 'next')).toBe(true);
    expect(server.stats().channelMembers).toBe(1);
  });

  it('refuses a join to a held channel with UNAVAILABLE while Redis keeps its connection open but does not answer', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis();
    const proxy = await startTcpProxy(redis.port);
    const server = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'error' });
    const member = await openAcknowledgedSocket(server.wsUrl);
    const newcomer = await openAcknowledgedSocket(server.wsUrl);
    join(member, 'held', 'room');
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the first member joined' });

    // Silent: ioredis still says `ready`, so only an answer from Redis can tell the join it is
    // live. New connections are refused too, so the liveness check's reconnect cannot end the
    // silence. Accepted, the join is never answered (this waits into its timeout); the member
    // count cannot tell, as it counts a join while it waits for its confirmation.
    proxy.refuse(true);
    proxy.blackhole(true);
    join(newcomer, 'silent', 'room');
    const answer = await waitFor(() => newcomer.pending[0], { timeoutMs: 20_000, message: 'the held-channel join was answered' });
    expect(answer).toEqual({ id: 'silent', type: 'next', payload: { errors: [UNAVAILABLE] } });
    expect(await newcomer.nextMessage()).toEqual(answer);
    expect(await newcomer.nextMessage()).toEqual({ id: 'silent', type: 'complete' });
    expect(server.stats().channelMembers).toBe(1);
    proxy.dropAll();
  });
});
