import { describe, expect, it } from 'vitest';
import type { RawSocket } from '../helpers/ws-client.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('channels', () => {
  it('delivers a broadcast to members of the channel in the same scope only', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const permissions = ['room:1.join', 'room:1.broadcast'];
    const tenantA = await signHs256({ tenant: 'tenant-a', permissions });
    const tenantB = await signHs256({ tenant: 'tenant-b', permissions });
    const memberA = await openAcknowledgedSocket(server.wsUrl, tenantA);
    const memberB = await openAcknowledgedSocket(server.wsUrl, tenantB);
    const subscribe = { query: 'subscription { channel(name: "room:1") { channel event data } }' };
    memberA.send({ id: 'a', type: 'subscribe', payload: subscribe });
    memberB.send({ id: 'b', type: 'subscribe', payload: subscribe });
    await waitFor(() => server.stats().channelMembers === 2, { message: 'both sockets joined the channel' });

    const sent = await postGraphQL(
      server.graphqlUrl,
      { query: 'mutation { broadcast(channel: "room:1", event: "hello", data: { n: 1 }) }' },
      { authorization: `Bearer ${tenantB}` },
    );
    expect(sent.body).toEqual({ data: { broadcast: true } });

    const received = await memberB.nextMessage();
    expect(received).toEqual({ id: 'b', type: 'next', payload: { data: { channel: { channel: 'room:1', event: 'hello', data: { n: 1 } } } } });
    expect(memberA.pending).toEqual([]);

    // Barrier: a marker broadcast in each member's own scope after the message. A late leak of
    // tenant B's message to A, or a duplicate to B, would arrive before it.
    for (const [token, member, id] of [[tenantA, memberA, 'a'], [tenantB, memberB, 'b']] as const) {
      const marked = await postGraphQL(
        server.graphqlUrl,
        { query: 'mutation { broadcast(channel: "room:1", event: "marker") }' },
        { authorization: `Bearer ${token}` },
      );
      expect(marked.body).toEqual({ data: { broadcast: true } });
      expect(await member.nextMessage()).toEqual({ id, type: 'next', payload: { data: { channel: { channel: 'room:1', event: 'marker', data: null } } } });
    }
  });

  it('refuses a broadcast over EVENT_MAX_PAYLOAD_BYTES (BAD_USER_INPUT, field: data) or nested too deeply; its members go on', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, EVENT_MAX_PAYLOAD_BYTES: '1024' });
    const token = await signHs256({ tenant: 'tenant-a', permissions: ['room:2.join', 'room:2.broadcast'] });
    const member = await openAcknowledgedSocket(server.wsUrl, token);
    member.send({ id: 'm', type: 'subscribe', payload: { query: 'subscription { channel(name: "room:2") { event data } }' } });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the socket joined the channel' });
    const query = 'mutation($e: String!, $d: JSON) { broadcast(channel: "room:2", event: $e, data: $d) }';
    const send = (event: string, data: unknown) => postGraphQL(server.graphqlUrl, { query, variables: { e: event, d: data } }, { authorization: `Bearer ${token}` });

    const large = await send('large', { text: 'x'.repeat(1024) });
    expect(large.body).toEqual({
      data: null,
      errors: [expect.objectContaining({ message: 'data is 1035 bytes of JSON; the limit is 1024', extensions: { code: 'BAD_USER_INPUT', field: 'data' } })],
    });
    // Refused where the request arrives: the variable's nesting is checked before anything runs.
    // Written out: JSON.stringify itself cannot serialize a value this deep.
    const deep = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: `{"query":${JSON.stringify(query)},"variables":{"e":"deep","d":${'['.repeat(20_000)}1${']'.repeat(20_000)}}}`,
    });
    expect(deep.status).toBe(400);
    expect(((await deep.json()) as GraphQLResponseBody).errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);

    // The member's subscription is intact, and nothing of the refused ones came before this.
    expect((await send('small', { n: 1 })).body).toEqual({ data: { broadcast: true } });
    expect(await member.nextMessage()).toEqual({ id: 'm', type: 'next', payload: { data: { channel: { event: 'small', data: { n: 1 } } } } });
  });

  it('needs <prefix>.join to join and <prefix>.broadcast to broadcast (FORBIDDEN otherwise); a dotted prefix covers the channels below it', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const listener = await signHs256({ sub: 'listener', permissions: ['chat.join'] });
    const speaker = await signHs256({ sub: 'speaker', permissions: ['chat.broadcast'] });
    const member = await openAcknowledgedSocket(server.wsUrl, listener);
    join(member, 'room', 'chat.room-7');
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the listener joined chat.room-7' });

    // `chat.join` covers `chat` and `chat.…`, not a name that merely starts with the letters.
    join(member, 'other', 'chatter');
    expect(await member.nextMessage()).toMatchObject({
      id: 'other',
      type: 'next',
      payload: { errors: [{ message: 'Joining "chatter" needs the permission "<prefix>.join" for a prefix of the channel', extensions: { code: 'FORBIDDEN', field: 'name' } }] },
    });
    expect(await member.nextMessage()).toEqual({ id: 'other', type: 'complete' });

    // Joining does not allow broadcasting, nor broadcasting joining.
    const send = (token: string, event: string) =>
      postGraphQL(server.graphqlUrl, { query: `mutation { broadcast(channel: "chat.room-7", event: "${event}") }` }, { authorization: `Bearer ${token}` });
    expect((await send(listener, 'refused')).body).toEqual({
      data: null,
      errors: [expect.objectContaining({ message: 'Broadcasting to "chat.room-7" needs the permission "<prefix>.broadcast" for a prefix of the channel', extensions: { code: 'FORBIDDEN', field: 'channel' } })],
    });
    const outsider = await openAcknowledgedSocket(server.wsUrl, speaker);
    join(outsider, 'peek', 'chat.room-7');
    expect(await outsider.nextMessage()).toMatchObject({ id: 'peek', type: 'next', payload: { errors: [{ extensions: { code: 'FORBIDDEN' } }] } });
    expect(await outsider.nextMessage()).toEqual({ id: 'peek', type: 'complete' });
    expect(server.stats().channelMembers).toBe(1);

    // Barrier: the allowed broadcast is the member's next message — the refused one sent nothing.
    expect((await send(speaker, 'allowed')).body).toEqual({ data: { broadcast: true } });
    expect(await member.nextMessage()).toEqual({ id: 'room', type: 'next', payload: { data: { channel: { channel: 'chat.room-7', event: 'allowed' } } } });
  });

  it('ends a membership at once when a refreshed token may no longer join the channel; the others go on', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const claims = { sub: 'member', permissions: ['lobby.join', 'vip.join'] };
    const member = await openAcknowledgedSocket(server.wsUrl, await signHs256(claims));
    join(member, 'lobby', 'lobby');
    join(member, 'vip', 'vip');
    await waitFor(() => server.stats().channelMembers === 2, { message: 'both channels joined' });

    const refreshed = await signHs256({ ...claims, permissions: ['lobby.join'] });
    member.send({ id: 'r', type: 'subscribe', payload: { query: 'mutation($t: String!) { refreshAuth(token: $t) { stoppedSubscriptions } }', variables: { t: refreshed } } });
    expect(await member.nextMessage()).toEqual({
      id: 'vip',
      type: 'error',
      payload: [{ message: expect.any(String) as unknown, extensions: { code: 'FORBIDDEN', reason: 'PERMISSION_REVOKED' } }],
    });
    expect(await member.nextMessage()).toEqual({ id: 'r', type: 'next', payload: { data: { refreshAuth: { stoppedSubscriptions: 1 } } } });
    expect(await member.nextMessage()).toEqual({ id: 'r', type: 'complete' });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'the vip membership left' });

    // Barrier: the lobby's broadcast is the next message, nothing of the vip channel before it.
    const admin = await signHs256({ sub: 'admin', roles: ['admin'] });
    for (const channel of ['vip', 'lobby']) {
      const sent = await postGraphQL(server.graphqlUrl, { query: `mutation { broadcast(channel: "${channel}", event: "hi") }` }, { authorization: `Bearer ${admin}` });
      expect(sent.body).toEqual({ data: { broadcast: true } });
    }
    expect(await member.nextMessage()).toEqual({ id: 'lobby', type: 'next', payload: { data: { channel: { channel: 'lobby', event: 'hi' } } } });
  });
});

/** Subscribes operation `id` of the socket to channel `name`. */
function join(socket: RawSocket, id: string, name: string): void {
  socket.send({ id, type: 'subscribe', payload: { query: `subscription { channel(name: "${name}") { channel event } }` } });
}
