/**
 * A command that Redis ran but whose reply was lost with its connection has an unknown outcome.
 * ioredis would send it again after reconnecting (`autoResendUnfulfilledCommands`): a PUBLISH
 * twice reaches a channel's members twice (channels are at most once), and a script run twice
 * answers for its second run (a document's revision check finding its own write: a false
 * CONFLICT). The command connection does not re-send: a broadcast is answered UNAVAILABLE, and a
 * document write looks up whether it landed (`sync/lost-writes.ts`) and answers as it did.
 */
import { describe, expect, it } from 'vitest';
import { expectErrorCode } from '../helpers/events.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

/** Tributary's command connection (not its subscriber's, nor a probe's). */
const onCommandConnection = { connectionName: 'tributary' };
const eventOf = (message: ReceivedMessage): unknown => (message.payload as { data?: { channel?: { event?: unknown } } }).data?.channel?.event;

describe('a command whose reply is lost with the connection', () => {
  it('delivers a broadcast once and answers it UNAVAILABLE', { timeout: 45_000 }, async () => {
    const redis = await startPrivateRedis();
    const proxy = await startTcpProxy(redis.port);
    const server = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: uniquePrefix() });
    const broadcast = (event: string) => postGraphQL(server.graphqlUrl, { query: `mutation { broadcast(channel: "room", event: "${event}") }` });
    const member = await openAcknowledgedSocket(server.wsUrl);
    member.send({ id: 'm', type: 'subscribe', payload: { query: 'subscription { channel(name: "room") { event } }' } });
    // Joined for real once a probe is heard (at most once: one sent before the SUBSCRIBE is lost).
    await waitFor(async () => {
      await broadcast('probe');
      return member.pending.some((message) => eventOf(message) === 'probe');
    });

    const cut = proxy.cutReplyTo(/\r\npublish\r\n/i, onCommandConnection);
    const sent = await broadcast('once');
    await cut;
    // Everything of "once" has arrived when a marker sent after it has.
    await waitFor(async () => {
      await broadcast('marker');
      return member.pending.some((message) => eventOf(message) === 'marker');
    });
    expect(member.pending.filter((message) => eventOf(message) === 'once')).toHaveLength(1);
    expectErrorCode(sent.body, 'UNAVAILABLE');
  });

  it('answers a document write whose revision-check script ran as written (looked up), not CONFLICT', { timeout: 45_000 }, async () => {
    const redis = await startPrivateRedis();
    const proxy = await startTcpProxy(redis.port);
    const server = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: uniquePrefix() });
    const create = 'mutation { createDocument(service: "boards", id: "b1", data: { title: "a" }) { revision } }';
    expect((await postGraphQL(server.graphqlUrl, { query: create })).body).toEqual({ data: { createDocument: { revision: 1 } } });

    // The write script (its wait mark and the new data among its arguments) runs; its reply is lost.
    const cut = proxy.cutReplyTo(/:wait:[\s\S]*"title":"b"/, onCommandConnection);
    const merged = await postGraphQL(server.graphqlUrl, {
      query: 'mutation { mergeDocument(service: "boards", id: "b1", patch: { title: "b" }, expectedRevision: 1) { revision } }',
    });
    await cut;
    expect(merged.body).toEqual({ data: { mergeDocument: { revision: 2 } } });
    const read = await postGraphQL(server.graphqlUrl, { query: 'query { document(service: "boards", id: "b1") { revision data } }' });
    expect(read.body).toEqual({ data: { document: { revision: 2, data: { title: 'b' } } } });
  });
});
