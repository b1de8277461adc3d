/**
 * graphql-transport-ws (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md) driven
 * frame by frame: the close codes for every protocol violation, ping/pong, the per-socket
 * operation cap, `complete` from the client, and the operation limits on both transports.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, openSocket, type RawSocket } from '../helpers/ws-client.ts';

const CLOSE = {
  MessageTooBig: 1009,
  BadRequest: 4400,
  Unauthorized: 4401,
  SubprotocolNotAcceptable: 4406,
  ConnectionInitialisationTimeout: 4408,
  SubscriberAlreadyExists: 4409,
  TooManyInitialisationRequests: 4429,
} as const;

const MAX_PAYLOAD_BYTES = 2048;
const MAX_SUBSCRIPTIONS = 2;
const MAX_SUBSCRIPTION_BYTES = 3000;

function channelSubscription(name: string): { query: string } {
  return { query: `subscription { channel(name: "${name}") { event } }` };
}

/**
 * A ping/pong round trip: the socket is open, the server still reads it, and (messages being
 * answered in order) nothing else was sent to the client before the pong.
 */
async function expectAlive(client: RawSocket): Promise<void> {
  client.send({ type: 'ping', payload: { alive: true } });
  expect(await client.nextMessage()).toEqual({ type: 'pong', payload: { alive: true } });
  expect(client.socket.readyState).toBe(WebSocket.OPEN);
}

describe('graphql-transport-ws protocol', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer(
      {
        JWT_SECRET: TEST_SECRET,
        WS_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES),
        WS_MAX_SUBSCRIPTIONS: String(MAX_SUBSCRIPTIONS),
        WS_MAX_SUBSCRIPTION_BYTES: String(MAX_SUBSCRIPTION_BYTES),
      },
      { autoDispose: false },
    );
    const channels = ['budget', 'capped', 'early', 'library', 'reuse', 'room', 'x'];
    token = await signHs256({ sub: 'protocol-user', permissions: channels.flatMap((name) => [`${name}.join`, `${name}.broadcast`]) });
    return () => server.dispose();
  });
  // Sockets of the previous test are terminated when it finishes; start from an idle server so
  // the channelMembers counts below are this test's own.
  beforeEach(async () => {
    await waitFor(() => server.stats().connections === 0 && server.stats().channelMembers === 0, {
      message: 'server idle before the test',
    });
  });

  async function broadcast(channel: string, event: string): Promise<void> {
    const sent = await postGraphQL(
      server.graphqlUrl,
      { query: 'mutation ($channel: String!, $event: String!) { broadcast(channel: $channel, event: $event) }', variables: { channel, event } },
      { authorization: `Bearer ${token}` },
    );
    expect(sent.body).toEqual({ data: { broadcast: true } });
  }

  describe('closes with 4400 Bad Request', () => {
    it.each([
      ['an unknown message type', { type: 'bogus' }],
      ['a message that is not JSON', '{"type": "ping"'],
      ['a server-only message type (next)', { type: 'next', id: '1', payload: {} }],
      ['a server-only message type (connection_ack)', { type: 'connection_ack' }],
      ['a subscribe whose query is not a string', { id: '1', type: 'subscribe', payload: { query: 42 } }],
      ['a subscribe without an id', { type: 'subscribe', payload: { query: '{ viewer { subject } }' } }],
      // The reason quotes the type; a close frame carries at most 123 bytes of it.
      ['an unknown message type with a long multi-byte name', { type: 'é'.repeat(200) }],
    ])('when the client sends %s', async (_label, message) => {
      const client = await openAcknowledgedSocket(server.wsUrl, token);
      client.send(message);
      const closed = await client.closed();
      expect(closed.code).toBe(CLOSE.BadRequest);
      expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123);
      expect(closed.reason).not.toContain('\uFFFD');
      expect(client.pending).toEqual([]);
    });

    it('when connection_init carries a payload that is not an object', async () => {
      const client = await openSocket(server.wsUrl);
      client.send({ type: 'connection_init', payload: 'Bearer token' });
      expect((await client.closed()).code).toBe(CLOSE.BadRequest);
      expect(client.pending).toEqual([]);
    });
  });

  it('closes with 4400 on a subscribe whose id is longer than 128 characters, and runs one of 128', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    const id = 'i'.repeat(128);
    client.send({ id, type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.nextMessage()).toEqual({ id, type: 'next', payload: { data: { viewer: { subject: 'protocol-user' } } } });
    expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
    // The socket would keep the id as long as the operation runs: refused before it runs.
    client.send({ id: `${id}i`, type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    await expect(client.nextMessage()).rejects.toThrow(/^socket closed \(4400 /);
    expect(await client.closed()).toEqual({ code: CLOSE.BadRequest, reason: 'Operation id longer than 128 characters' });
  });

  it('closes with 4401 when the client subscribes before connection_init', async () => {
    const client = await openSocket(server.wsUrl);
    client.send({ id: '1', type: 'subscribe', payload: channelSubscription('early') });
    expect(await client.closed()).toEqual({ code: CLOSE.Unauthorized, reason: 'Unauthorized' });
    expect(client.pending).toEqual([]);
    expect(server.stats().channelMembers).toBe(0);
  });

  it('closes with 4429 on a second connection_init', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    expect((await client.closed()).code).toBe(CLOSE.TooManyInitialisationRequests);
    expect(client.pending).toEqual([]);
  });

  it('closes with 4409 when a subscribe reuses the id of an active subscription', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'dup', type: 'subscribe', payload: channelSubscription('x') });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'first subscription active' });

    client.send({ id: 'dup', type: 'subscribe', payload: channelSubscription('x') });

    expect(await client.closed()).toEqual({ code: CLOSE.SubscriberAlreadyExists, reason: 'Subscriber for dup already exists' });
    await waitFor(() => server.stats().channelMembers === 0, { message: 'subscription released with the socket' });
  });

  it('closes with 4406 when the client offers no graphql-transport-ws subprotocol', async () => {
    const client = await openSocket(server.wsUrl, { protocols: [] });
    expect((await client.closed()).code).toBe(CLOSE.SubprotocolNotAcceptable);
    expect(client.pending).toEqual([]);
  });

  it('closes with 1009 when a message is larger than WS_MAX_PAYLOAD_BYTES', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    const padding = ' '.repeat(MAX_PAYLOAD_BYTES);
    client.send({ id: 'big', type: 'subscribe', payload: { query: `{ viewer { subject } }${padding}` } });
    expect((await client.closed()).code).toBe(CLOSE.MessageTooBig);
    expect(client.pending).toEqual([]);
  });

  it('accepts a message just under WS_MAX_PAYLOAD_BYTES', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    const message = { id: 'fits', type: 'subscribe', payload: { query: '{ viewer { subject } }' } };
    const padding = ' '.repeat(MAX_PAYLOAD_BYTES - JSON.stringify(message).length - 1);
    message.payload.query += padding;
    expect(Buffer.byteLength(JSON.stringify(message))).toBeLessThan(MAX_PAYLOAD_BYTES);
    client.send(message);
    expect(await client.nextMessage()).toEqual({ id: 'fits', type: 'next', payload: { data: { viewer: { subject: 'protocol-user' } } } });
  });

  it('answers ping with pong, echoing the payload when there is one', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ type: 'ping' });
    expect(await client.nextMessage()).toEqual({ type: 'pong' });
    client.send({ type: 'ping', payload: { sequence: 7, note: 'echo me' } });
    expect(await client.nextMessage()).toEqual({ type: 'pong', payload: { sequence: 7, note: 'echo me' } });
  });

  it('ignores a pong from the client and keeps the socket open', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ type: 'pong' });
    client.send({ type: 'pong', payload: { unsolicited: true } });
    client.send({ type: 'ping' });
    // Messages are handled in order: the first answer is the pong to our ping, nothing for the pongs.
    expect(await client.nextMessage()).toEqual({ type: 'pong' });
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('refuses a subscribe beyond WS_MAX_SUBSCRIPTIONS with RATE_LIMITED and keeps the socket open', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 's1', type: 'subscribe', payload: channelSubscription('capped') });
    client.send({ id: 's2', type: 'subscribe', payload: channelSubscription('capped') });
    await waitFor(() => server.stats().channelMembers === 2, { message: 'two subscriptions active' });

    client.send({ id: 's3', type: 'subscribe', payload: channelSubscription('capped') });
    const refused = await client.nextMessage();
    expect(refused).toMatchObject({ id: 's3', type: 'error', payload: [{ extensions: { code: 'RATE_LIMITED' } }] });
    expect(refused.payload).toHaveLength(1);
    await expectAlive(client);
    expect(server.stats().channelMembers).toBe(2);

    // Completing one frees a slot: the refused id is accepted now and joins the channel.
    client.send({ id: 's1', type: 'complete' });
    await waitFor(() => server.stats().channelMembers === 1, { message: 's1 left the channel' });
    client.send({ id: 's3', type: 'subscribe', payload: channelSubscription('capped') });
    await expectAlive(client);
    expect(client.pending).toEqual([]);
    await waitFor(() => server.stats().channelMembers === 2, { message: 's3 active in place of s1' });
    await broadcast('capped', 'after-cap');
    const delivered = [await client.nextMessage(), await client.nextMessage()];
    expect(delivered.map((message) => message.id).sort()).toEqual(['s2', 's3']);
    for (const message of delivered) expect(message).toMatchObject({ type: 'next', payload: { data: { channel: { event: 'after-cap' } } } });
  });

  it('refuses a subscribe that would take the socket past WS_MAX_SUBSCRIPTION_BYTES with RATE_LIMITED, until one ends', async () => {
    /** A channel subscription whose `subscribe` message is `bytes` long (the query padded with spaces). */
    const sized = (id: string, bytes: number) => {
      const message = { id, type: 'subscribe', payload: channelSubscription('budget') };
      message.payload.query += ' '.repeat(bytes - Buffer.byteLength(JSON.stringify(message)));
      expect(Buffer.byteLength(JSON.stringify(message))).toBe(bytes);
      return message;
    };
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send(sized('large', 2000));
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the large subscription active' });

    client.send(sized('over', MAX_SUBSCRIPTION_BYTES - 2000 + 1));
    const refused = await client.nextMessage();
    expect(refused).toMatchObject({ id: 'over', type: 'error', payload: [{ extensions: { code: 'RATE_LIMITED' } }] });
    await expectAlive(client);
    expect(server.stats().channelMembers).toBe(1);

    // Up to the budget exactly is accepted; once the large one ends, the refused size fits.
    client.send(sized('fits', MAX_SUBSCRIPTION_BYTES - 2000));
    await waitFor(() => server.stats().channelMembers === 2, { message: 'the subscription that fits active' });
    client.send({ id: 'large', type: 'complete' });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the large subscription left' });
    client.send(sized('over', MAX_SUBSCRIPTION_BYTES - 2000 + 1));
    await waitFor(() => server.stats().channelMembers === 2, { message: 'the refused size accepted once room was made' });
    await expectAlive(client);
    expect(client.pending).toEqual([]);
  });

  it('stops a subscription on complete from the client without sending complete back', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'stopped', type: 'subscribe', payload: channelSubscription('room') });
    client.send({ id: 'kept', type: 'subscribe', payload: channelSubscription('room') });
    await waitFor(() => server.stats().channelMembers === 2, { message: 'both subscriptions active' });

    client.send({ id: 'stopped', type: 'complete' });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'completed subscription left the channel' });

    await broadcast('room', 'after-complete');
    // `kept` proves the broadcast went out; the round trip after it flushes anything still in flight.
    expect(await client.nextMessage()).toEqual({ id: 'kept', type: 'next', payload: { data: { channel: { event: 'after-complete' } } } });
    await expectAlive(client);
    expect(client.pending).toEqual([]);
  });

  it('ignores complete for an id that is not running', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'never-started', type: 'complete' });
    await expectAlive(client);
    expect(client.pending).toEqual([]);
  });

  it('answers a subscription refused by its resolver with next carrying the error, then complete', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'bad-name', type: 'subscribe', payload: channelSubscription('not a valid name!') });
    const next = await client.nextMessage();
    expect(next).toMatchObject({ id: 'bad-name', type: 'next', payload: { errors: [{ extensions: { code: 'BAD_USER_INPUT' } }] } });
    expect(await client.nextMessage()).toEqual({ id: 'bad-name', type: 'complete' });
    expect(server.stats().channelMembers).toBe(0);
    await expectAlive(client);
  });

  it('runs a query over the socket as one next followed by complete', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'q', type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.nextMessage()).toEqual({ id: 'q', type: 'next', payload: { data: { viewer: { subject: 'protocol-user' } } } });
    expect(await client.nextMessage()).toEqual({ id: 'q', type: 'complete' });
    await expectAlive(client);
  });

  it('answers an invalid operation with an error message and keeps the socket open', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'bad', type: 'subscribe', payload: { query: '{ viewer { nope } }' } });
    const error = await client.nextMessage();
    expect(error).toMatchObject({ id: 'bad', type: 'error', payload: [{ message: expect.stringContaining('nope') as unknown }] });
    await expectAlive(client);
    // The failed id is free again.
    client.send({ id: 'bad', type: 'subscribe', payload: { query: '{ viewer { subject } }' } });
    expect(await client.nextMessage()).toMatchObject({ id: 'bad', type: 'next' });
  });

  it('answers a syntax error with an error message and keeps the socket open', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    client.send({ id: 'syntax', type: 'subscribe', payload: { query: '{ viewer { subject ' } });
    expect(await client.nextMessage()).toMatchObject({ id: 'syntax', type: 'error', payload: [{ message: expect.stringMatching(/Syntax Error/) as unknown }] });
    await expectAlive(client);
  });

  it('runs 20 operations on one socket, reusing ids once they completed', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl, token);
    for (let index = 0; index < 20; index += 1) {
      const id = `op-${index % 3}`;
      client.send({ id, type: 'subscribe', payload: { query: `{ viewer { subject } }` } });
      expect(await client.nextMessage()).toEqual({ id, type: 'next', payload: { data: { viewer: { subject: 'protocol-user' } } } });
      expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
    }

    // A subscription's id is free again once the client completed it.
    client.send({ id: 'op-0', type: 'subscribe', payload: channelSubscription('reuse') });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'subscription active' });
    client.send({ id: 'op-0', type: 'complete' });
    await waitFor(() => server.stats().channelMembers === 0, { message: 'subscription stopped' });
    client.send({ id: 'op-0', type: 'subscribe', payload: channelSubscription('reuse') });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'id reused for a new subscription' });
    await broadcast('reuse', 'again');
    expect(await client.nextMessage()).toEqual({ id: 'op-0', type: 'next', payload: { data: { channel: { event: 'again' } } } });
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('delivers a broadcast to a subscription made with the graphql-ws client', async () => {
    const closed = Promise.withResolvers<{ code: number }>();
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      lazy: false,
      retryAttempts: 0,
      on: { closed: (event) => closed.resolve(event as { code: number }) },
    });
    onTestFinished(() => client.dispose());

    const results = client.iterate<{ channel: { event: string } }>(channelSubscription('library'));
    const first = results.next();
    await waitFor(() => server.stats().channelMembers === 1, { message: 'graphql-ws client joined the channel' });
    await broadcast('library', 'from-http');

    expect(await first).toEqual({ done: false, value: { data: { channel: { event: 'from-http' } } } });
    await results.return?.();
    await waitFor(() => server.stats().channelMembers === 0, { message: 'iterator return completed the subscription' });

    await client.dispose();
    // A normal closure from the client, and the server forgets the socket.
    expect((await closed.promise).code).toBe(1000);
    await waitFor(() => server.stats().connections === 0, { message: 'socket released after dispose' });
  });
});

describe('graphql-transport-ws connection_init timeout', () => {
  it('closes with 4408 when no connection_init arrives in time', async () => {
    const server = await startTestServer({ WS_CONNECTION_INIT_TIMEOUT_MS: '200' });
    const client = await openSocket(server.wsUrl);
    expect(await client.closed()).toEqual({ code: CLOSE.ConnectionInitialisationTimeout, reason: 'Connection initialisation timeout' });
    expect(client.pending).toEqual([]);
  });

  it('acknowledges a connection_init that arrived in time though the server stalled past the timeout', async () => {
    const server = await startTestServer({ WS_CONNECTION_INIT_TIMEOUT_MS: '200' });
    const client = await openSocket(server.wsUrl);
    client.send({ type: 'connection_init', payload: {} });
    // The server's event loop blocked past its timeout (a long task, a paused process): when it
    // runs again, its expired timer comes before the socket's waiting input.
    const blockedUntil = Date.now() + 400;
    while (Date.now() < blockedUntil) {
      // busy: nothing else runs in this process meanwhile
    }
    expect(await client.nextMessage()).toMatchObject({ type: 'connection_ack' });
  });
});

describe('operation limits on both transports', () => {
  const tooDeep = '{ __type(name: "Viewer") { fields { name } } }';
  const tooManyAliases = '{ first: viewer { subject } second: viewer { subject } }';
  const tooManyTokens = `{ viewer { ${'subject '.repeat(60)}} }`;
  const withinLimits = '{ viewer { subject } }';
  const cases = [
    ['deeper than GRAPHQL_MAX_DEPTH', tooDeep],
    ['with more aliases than GRAPHQL_MAX_ALIASES', tooManyAliases],
    ['with more tokens than GRAPHQL_MAX_TOKENS', tooManyTokens],
  ] as const;

  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ GRAPHQL_MAX_DEPTH: '2', GRAPHQL_MAX_ALIASES: '1', GRAPHQL_MAX_TOKENS: '60' }, { autoDispose: false });
    return () => server.dispose();
  });

  it.each(cases)('refuses an operation %s over the WebSocket with QUERY_TOO_COMPLEX', async (_label, query) => {
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'limited', type: 'subscribe', payload: { query } });
    const error = await client.nextMessage();
    expect(error).toMatchObject({ id: 'limited', type: 'error' });
    const codes = (error.payload as { extensions?: { code?: string } }[]).map((entry) => entry.extensions?.code);
    expect(codes).toEqual(['QUERY_TOO_COMPLEX']);
    await expectAlive(client);
  });

  it.each(cases)('refuses an operation %s over HTTP with QUERY_TOO_COMPLEX', async (_label, query) => {
    // Its own document text (a comment is no token): yoga caches parse results per document for
    // both transports, and what the WebSocket cached first is the subject of the tests below.
    const response = await postGraphQL(server.graphqlUrl, { query: `${query} # over HTTP` });
    // A request refused before execution is a 400 under application/graphql-response+json.
    expect(response.status).toBe(400);
    expect(response.body.data ?? null).toBeNull();
    expect(response.body.errors?.map((entry) => entry.extensions?.['code'])).toEqual(['QUERY_TOO_COMPLEX']);
  });

  /** Sends `query` over a socket first and returns its error message's payload. */
  async function refusedOverWebSocket(query: string): Promise<unknown> {
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'first', type: 'subscribe', payload: { query } });
    const error = await client.nextMessage();
    expect(error).toMatchObject({ id: 'first', type: 'error' });
    return error.payload;
  }

  it('still answers HTTP with 400 QUERY_TOO_COMPLEX for a too-long operation the WebSocket refused first', async () => {
    const query = `{ viewer { ${'subject '.repeat(61)}} } # ws first`;
    expect(await refusedOverWebSocket(query)).toMatchObject([{ extensions: { code: 'QUERY_TOO_COMPLEX' } }]);

    const response = await postGraphQL(server.graphqlUrl, { query });

    expect(response.body.errors?.map((entry) => entry.extensions?.['code'])).toEqual(['QUERY_TOO_COMPLEX']);
    expect(response.status).toBe(400);
  });

  it('still answers HTTP with 400 GRAPHQL_PARSE_FAILED for a syntax error the WebSocket saw first', async () => {
    const query = '{ viewer { subject # ws first, never closed';
    expect(await refusedOverWebSocket(query)).toMatchObject([{ message: expect.stringMatching(/^Syntax Error/) as unknown }]);

    const response = await postGraphQL(server.graphqlUrl, { query });

    // Not masked as an internal error: the client's own syntax error, with the parse-failure code.
    expect(response.body.errors?.map((entry) => [entry.message, entry.extensions?.['code']])).toEqual([
      [expect.stringMatching(/^Syntax Error/), 'GRAPHQL_PARSE_FAILED'],
    ]);
    expect(response.status).toBe(400);
  });

  it('answers HTTP with 400 GRAPHQL_PARSE_FAILED for a syntax error it sees first', async () => {
    // The control for the test above: the same kind of document, HTTP first.
    const response = await postGraphQL(server.graphqlUrl, { query: '{ viewer { subject # http first, never closed' });
    expect(response.body.errors?.map((entry) => entry.extensions?.['code'])).toEqual(['GRAPHQL_PARSE_FAILED']);
    expect(response.status).toBe(400);
  });

  it('runs an operation within the limits on both transports', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'ok', type: 'subscribe', payload: { query: withinLimits } });
    expect(await client.nextMessage()).toEqual({ id: 'ok', type: 'next', payload: { data: { viewer: { subject: 'development' } } } });
    const response = await postGraphQL(server.graphqlUrl, { query: withinLimits });
    expect(response).toEqual({ status: 200, body: { data: { viewer: { subject: 'development' } } } });
  });
});
