/**
 * Presence: who is in a channel now (`channelMembers`), and `presence.joined` / `presence.left`
 * in the `channel` subscription of the members who ask for them (`presence: true`) — across
 * instances over Redis (an instance that dies takes its members with it once its heartbeat
 * expires), and in one process without Redis. Scoped like the channel: by tenant, `<prefix>.join`.
 */
import { describe, expect, it } from 'vitest';
import { startMainProcess } from '../helpers/main-process.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/index.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

interface Member {
  readonly id: string;
  readonly subject: string;
  readonly connectionId: string | null;
  readonly joinedAt: string;
}

interface Members {
  readonly channel: string;
  readonly count: number;
  readonly members: readonly Member[];
}

const PERMISSIONS = ['chat.join', 'chat.broadcast'];
const person = (sub: string, tenant = 'tenant-a') => signHs256({ sub, tenant, permissions: PERMISSIONS });

async function request(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> {
  return (await postGraphQL(url, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

async function channelMembers(url: string, token: string, first?: number): Promise<Members> {
  const body = await request(url, token, 'query($first: Int) { channelMembers(channel: "chat.lobby", first: $first) { channel count members { id subject connectionId joinedAt } } }', { first });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['channelMembers'] as Members;
}

function join(socket: RawSocket, id: string, presence: boolean): void {
  const query = `subscription { channel(name: "chat.lobby", presence: ${presence}) { event member { id subject connectionId } } }`;
  socket.send({ id, type: 'subscribe', payload: { query } });
}

/** The next presence message on `id`: its event and the member's subject. */
async function nextPresence(socket: RawSocket, id: string): Promise<string> {
  const message: ReceivedMessage = await socket.nextMessage();
  expect(message).toMatchObject({ id, type: 'next' });
  const { event, member } = (message.payload as { data: { channel: { event: string; member: { subject: string } | null } } }).data.channel;
  return `${event} ${member?.subject ?? '-'}`;
}

const subjects = (members: Members) => members.members.map((member) => member.subject);

describe('channel presence', () => {
  it('lists the members of a channel across two instances, announces joins and leaves to those who ask, and keeps tenants apart', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const shared = { JWT_SECRET: TEST_SECRET, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    const [first, second] = await Promise.all([startTestServer(shared), startTestServer(shared, { autoDispose: false })]);
    const [alice, bob, carol] = await Promise.all([person('alice'), person('bob'), person('carol', 'tenant-b')]);

    const aliceSocket = await openAcknowledgedSocket(first.wsUrl, alice);
    join(aliceSocket, 'a', true);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined alice');
    const bobSocket = await openAcknowledgedSocket(second.wsUrl, bob);
    join(bobSocket, 'b', false);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined bob');
    const carolSocket = await openAcknowledgedSocket(second.wsUrl, carol);
    join(carolSocket, 'c', true);
    expect(await nextPresence(carolSocket, 'c')).toBe('presence.joined carol');

    // Asked on either instance, in the caller's tenant only; in the order they joined.
    const listed = await channelMembers(first.graphqlUrl, bob);
    expect(listed).toMatchObject({ channel: 'chat.lobby', count: 2 });
    expect(subjects(listed)).toEqual(['alice', 'bob']);
    expect(listed.members.every((member) => typeof member.connectionId === 'string' && !Number.isNaN(Date.parse(member.joinedAt)))).toBe(true);
    expect(subjects(await channelMembers(second.graphqlUrl, alice))).toEqual(['alice', 'bob']);
    expect(await channelMembers(first.graphqlUrl, carol)).toMatchObject({ count: 1, members: [{ subject: 'carol' }] });
    // Bounded: the first N, with the count of all.
    expect(await channelMembers(first.graphqlUrl, alice, 1)).toMatchObject({ count: 2, members: [{ subject: 'alice' }] });

    // Barrier: a broadcast after the joins is bob's next message — he did not ask for presence.
    expect(await request(first.graphqlUrl, alice, 'mutation { broadcast(channel: "chat.lobby", event: "marker") }')).toEqual({ data: { broadcast: true } });
    expect(await nextPresence(bobSocket, 'b')).toBe('marker -');
    expect(await nextPresence(aliceSocket, 'a')).toBe('marker -');

    // Leaving by unsubscribing, then by closing the socket (bob joins again on another socket).
    bobSocket.send({ id: 'b', type: 'complete' });
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.left bob');
    const bobAgain = await openAcknowledgedSocket(second.wsUrl, bob);
    join(bobAgain, 'b2', false);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined bob');
    bobAgain.socket.close();
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.left bob');
    expect(await channelMembers(second.graphqlUrl, alice)).toMatchObject({ count: 1, members: [{ subject: 'alice' }] });
    // Barrier: nothing of tenant A's comings and goings reached carol before her own broadcast.
    expect(await request(second.graphqlUrl, carol, 'mutation { broadcast(channel: "chat.lobby", event: "marker") }')).toEqual({ data: { broadcast: true } });
    expect(await nextPresence(carolSocket, 'c')).toBe('marker -');

    // An instance that stops takes its members off at once, announced.
    const bobLast = await openAcknowledgedSocket(second.wsUrl, bob);
    join(bobLast, 'b3', false);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined bob');
    await second.dispose();
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.left bob');
    expect(await channelMembers(first.graphqlUrl, alice)).toMatchObject({ count: 1, members: [{ subject: 'alice' }] });
  });

  it('refuses channelMembers without <prefix>.join (FORBIDDEN) and a broadcast of a presence event (BAD_USER_INPUT)', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const outsider = await signHs256({ sub: 'eve', tenant: 'tenant-a', permissions: ['chat.broadcast'] });
    const members = await request(server.graphqlUrl, outsider, '{ channelMembers(channel: "chat.lobby") { count } }');
    expect(members.errors).toEqual([expect.objectContaining({ extensions: { code: 'FORBIDDEN', field: 'channel' } })]);

    const forged = await request(server.graphqlUrl, outsider, 'mutation { broadcast(channel: "chat.lobby", event: "presence.left", data: { subject: "alice" }) }');
    expect(forged.errors).toEqual([expect.objectContaining({ extensions: { code: 'BAD_USER_INPUT', field: 'event' } })]);

    const tooMany = await request(server.graphqlUrl, await person('alice'), '{ channelMembers(channel: "chat.lobby", first: 100000) { count } }');
    expect(tooMany.errors).toEqual([expect.objectContaining({ extensions: { code: 'BAD_USER_INPUT', field: 'first' } })]);
  });

  it('without Redis: lists the members in the process and announces their leaving', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { embedded: true });
    const [alice, bob] = await Promise.all([person('alice'), person('bob')]);
    const aliceSocket = await openAcknowledgedSocket(server.wsUrl, alice);
    join(aliceSocket, 'a', true);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined alice');
    const bobSocket = await openAcknowledgedSocket(server.wsUrl, bob);
    join(bobSocket, 'b', false);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined bob');
    expect(subjects(await channelMembers(server.graphqlUrl, alice))).toEqual(['alice', 'bob']);
    bobSocket.socket.close();
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.left bob');
    expect(await channelMembers(server.graphqlUrl, alice)).toMatchObject({ count: 1, members: [{ subject: 'alice' }] });
  });

  it('takes the members of an instance that died out of the list and announces them as left once its heartbeat expires', { timeout: 90_000 }, async () => {
    const database = await createTestDatabase();
    const shared = {
      JWT_SECRET: TEST_SECRET,
      DATABASE_URL: database.url,
      REDIS_URL: testRedisUrl(),
      REDIS_KEY_PREFIX: uniquePrefix(),
      DASHBOARD_TICK_SECONDS: '1',
    };
    const survivor: TestServer = await startTestServer(shared);
    const doomed = await startMainProcess({ ...shared, TRIBUTARY_ROLE: 'server' });
    const [alice, dave] = await Promise.all([person('alice'), person('dave')]);

    const aliceSocket = await openAcknowledgedSocket(survivor.wsUrl, alice);
    join(aliceSocket, 'a', true);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined alice');
    const daveSocket = await openAcknowledgedSocket(`ws://127.0.0.1:${doomed.port}/graphql`, dave);
    join(daveSocket, 'd', false);
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.joined dave');
    expect(subjects(await channelMembers(survivor.graphqlUrl, alice))).toEqual(['alice', 'dave']);

    doomed.child.kill('SIGKILL');
    await doomed.exited;
    expect(await nextPresence(aliceSocket, 'a')).toBe('presence.left dave');
    expect(await channelMembers(survivor.graphqlUrl, alice)).toMatchObject({ count: 1, members: [{ subject: 'alice' }] });
  });
});
