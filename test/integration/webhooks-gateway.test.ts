/**
 * Gateway events reach webhooks: a socket that connects, subscribes, broadcasts and closes is
 * told to an endpoint selecting `gateway.*` as `gateway.connected`, `.subscribed`, `.broadcast`
 * (channel and event name, never the data) and `.disconnected`, in that order; an endpoint of
 * tenant A hears nothing of tenant B's sockets; and events no endpoint selects are not routed at
 * all (`tributary_events_routed_total{source="socket"}` does not move).
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { MODES, modeEnv, type PipelineMode } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const CREATE = `mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }`;
const BODY_SECRET = 'body-that-must-not-leak';

function startServer(mode: PipelineMode): Promise<TestServer> {
  return startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...modeEnv(mode) });
}

async function createEndpoint(server: TestServer, input: Record<string, unknown>): Promise<void> {
  const body = await gql(server, await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] }), CREATE, { input });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
}

function user(tenant: string, subject: string): Promise<string> {
  return signHs256({ sub: subject, tenant, permissions: ['orders.read', 'room.join', 'room.broadcast', 'lobby.broadcast'] });
}

/** Joins channel `room` on the socket (operation id `room`) and waits until the server holds the membership. */
async function joinRoom(server: TestServer, socket: RawSocket): Promise<void> {
  const before = server.stats().channelMembers;
  socket.send({ id: 'room', type: 'subscribe', payload: { query: 'subscription { channel(name: "room") { event data } }' } });
  await waitFor(() => server.stats().channelMembers === before + 1, { message: 'joined the channel' });
}

/** Closes the socket from the client and waits until the server has released it. */
async function closeSocket(server: TestServer, socket: RawSocket, code = 1000): Promise<void> {
  socket.socket.close(code, 'bye');
  await socket.closed();
  await waitFor(() => server.stats().connections === 0, { message: 'the server released the socket' });
}

async function routedFromSockets(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((entry) => entry.startsWith('tributary_events_routed_total{source="socket"}'));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

function ofType(receiver: WebhookReceiver, type: string): ReceivedWebhook[] {
  return receiver.received.filter((request) => request.json.type === type);
}

describe.each(MODES)('gateway events as webhooks (%s)', (mode) => {
  it('tells an endpoint selecting gateway.* a socket’s connect, subscriptions, broadcast and close, in order, without the message body', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);
    const receiver = await startWebhookReceiver();
    await createEndpoint(server, { url: receiver.url, events: ['gateway.*'] });

    const socket = await openAcknowledgedSocket(server.wsUrl, await user('a', 'user-7'));
    socket.send({ id: 'orders', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id } }' } });
    await waitFor(() => server.stats().subscribers === 1, { message: 'the events subscription started' });
    await joinRoom(server, socket);
    // The channel's `gateway.subscribed` is told once its subscription is set up, which ends after
    // the member is counted: a broadcast sent at once may be told first (the client has no signal
    // between the two). The order under test is the server's, so the broadcast waits for it.
    await waitFor(() => ofType(receiver, 'gateway.subscribed').some((request) => request.json.data['field'] === 'channel'), {
      timeoutMs: 20_000,
      message: "the channel's subscription was told",
    });
    socket.send({
      id: 'send',
      type: 'subscribe',
      payload: { query: 'mutation($data: JSON) { broadcast(channel: "room", event: "typing", data: $data) }', variables: { data: { text: BODY_SECRET } } },
    });
    expect(await socket.waitForMessage((message) => message.id === 'room')).toMatchObject({ payload: { data: { channel: { event: 'typing' } } } });
    await closeSocket(server, socket);

    // A broadcast over HTTP has no connection: no connectionId, its own lane.
    const sent = await postGraphQL(server.graphqlUrl, { query: 'mutation { broadcast(channel: "lobby", event: "hello", data: { n: 1 }) }' }, { authorization: `Bearer ${await user('a', 'service-1')}` });
    expect(sent.body).toEqual({ data: { broadcast: true } });

    // The socket's events share one lane, delivered in order: once its disconnect has arrived,
    // everything it emitted before has too.
    await waitFor(() => ofType(receiver, 'gateway.disconnected').length === 1 && receiver.received.some((request) => request.json.data['channel'] === 'lobby'), {
      timeoutMs: 20_000,
      message: 'the socket’s disconnect and the HTTP broadcast were delivered',
    });
    expect(receiver.received.map((request) => request.body).join('\n')).not.toContain(BODY_SECRET);

    const fromSocket = receiver.received.filter((request) => request.json.data['channel'] !== 'lobby');
    const connectionId = fromSocket[0]!.json.data['connectionId'];
    expect(connectionId).toEqual(expect.any(String));
    expect(fromSocket.map(({ json }) => ({ type: json.type, topic: json.topic, tenant: json.tenant, entity: json.entity, data: json.data }))).toEqual([
      { type: 'gateway.connected', topic: 'gateway.connected', tenant: 'a', entity: connectionId, data: { connectionId, subject: 'user-7' } },
      { type: 'gateway.subscribed', topic: 'gateway.subscribed', tenant: 'a', entity: connectionId, data: { connectionId, subject: 'user-7', field: 'events', topic: 'orders' } },
      { type: 'gateway.subscribed', topic: 'gateway.subscribed', tenant: 'a', entity: connectionId, data: { connectionId, subject: 'user-7', field: 'channel' } },
      { type: 'gateway.broadcast', topic: 'gateway.broadcast', tenant: 'a', entity: connectionId, data: { connectionId, subject: 'user-7', channel: 'room', event: 'typing' } },
      { type: 'gateway.disconnected', topic: 'gateway.disconnected', tenant: 'a', entity: connectionId, data: { connectionId, subject: 'user-7', code: 1000 } },
    ]);
    expect(ofType(receiver, 'gateway.broadcast').find((request) => request.json.data['channel'] === 'lobby')!.json).toMatchObject({
      tenant: 'a',
      entity: null,
      data: { subject: 'service-1', channel: 'lobby', event: 'hello' },
    });
    expect(receiver.received).toHaveLength(6);
  });

  it('routes no gateway event no endpoint selects, and never tells tenant A’s endpoint about tenant B’s sockets', { timeout: 60_000 }, async () => {
    const server = await startServer(mode);

    // No endpoint at all: a socket's whole life routes nothing.
    const early = await openAcknowledgedSocket(server.wsUrl, await user('a', 'early'));
    await joinRoom(server, early);
    await closeSocket(server, early);

    const receiver = await startWebhookReceiver();
    await createEndpoint(server, { url: receiver.url, events: ['gateway.*'], tenant: 'a' });
    const ordersOnly = await startWebhookReceiver();
    await createEndpoint(server, { url: ordersOnly.url, events: ['orders.*'] });

    // Tenant B: endpoints exist, none selects its gateway events.
    const tokenB = await user('b', 'user-b');
    const socketB = await openAcknowledgedSocket(server.wsUrl, tokenB);
    await joinRoom(server, socketB);
    const sent = await postGraphQL(server.graphqlUrl, { query: 'mutation { broadcast(channel: "room", event: "ping") }' }, { authorization: `Bearer ${tokenB}` });
    expect(sent.body).toEqual({ data: { broadcast: true } });
    await socketB.waitForMessage((message) => message.id === 'room');
    await closeSocket(server, socketB);

    // Tenant A, after B is gone: its connect and close reach A's endpoint; they are the barrier.
    const socketA = await openAcknowledgedSocket(server.wsUrl, await user('a', 'user-a'));
    await closeSocket(server, socketA, 4000);
    const received = await receiver.waitForCount(2);
    expect(received.map(({ json }) => [json.type, json.tenant, json.data['subject']])).toEqual([
      ['gateway.connected', 'a', 'user-a'],
      ['gateway.disconnected', 'a', 'user-a'],
    ]);
    expect(received[1]!.json.data['code']).toBe(4000);

    // Only tenant A's two events were routed: the early socket's and tenant B's never entered the router.
    expect(await routedFromSockets(server)).toBe(2);
    expect(receiver.received).toHaveLength(2);
    expect(ordersOnly.received).toEqual([]);
  });
});
