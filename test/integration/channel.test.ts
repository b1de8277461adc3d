import { describe, expect, it } from 'vitest';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('channels', () => {
  it('delivers a broadcast to members of the channel in the same scope only', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const tenantA = await signHs256({ tenant: 'tenant-a' });
    const tenantB = await signHs256({ tenant: 'tenant-b' });
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
    const token = await signHs256({ tenant: 'tenant-a' });
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
});
