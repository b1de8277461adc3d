import { describe, expect, it } from 'vitest';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
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
});
