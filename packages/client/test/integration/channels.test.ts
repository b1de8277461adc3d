/**
 * joinChannel and broadcast against real servers: one client's broadcast reaches another's
 * membership, a join without `<prefix>.join` ends with FORBIDDEN, and a member whose socket the
 * server closed (a restart) joins again and receives what is broadcast after.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, TributaryRequestError, type ChannelMessage, type ClientOptions, type TributaryClient } from '@tributary/client';
import { freePort } from '../../../../test/helpers/free-port.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { startTestServer, type TestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const MEMBER = { sub: 'member', tenant: 'tenant-a', permissions: ['chat.join'] };
const SENDER = { sub: 'sender', tenant: 'tenant-a', permissions: ['chat.broadcast'] };
const OUTSIDER = { sub: 'outsider', tenant: 'tenant-a', permissions: ['other.join'] };

interface Typing {
  readonly user: string;
}

function open(url: string, claims: TokenClaims, options: Partial<ClientOptions> = {}): TributaryClient {
  const client = createClient({ url, getToken: () => signHs256(claims), backoff: { initialMs: 10, maxMs: 50 }, ...options });
  onTestFinished(() => client.close());
  return client;
}

describe('channels', () => {
  it('delivers one client’s broadcast to another’s membership, typed; leaving stops it', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const member = open(server.wsUrl, MEMBER);
    const sender = open(server.wsUrl, SENDER);
    const received: ChannelMessage<Typing>[] = [];
    const errors: unknown[] = [];
    const membership = member.joinChannel<Typing>('chat.room-7', { onMessage: (message) => void received.push(message), onError: (error) => void errors.push(error) });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'joined' });

    await sender.broadcast<Typing>('chat.room-7', 'typing', { user: 'ada' });
    await waitFor(() => received.length === 1, { message: 'the broadcast' });
    expect(received[0]).toEqual({ channel: 'chat.room-7', event: 'typing', data: { user: 'ada' } });
    expect(received[0]!.data.user).toBe('ada');

    membership.close();
    await waitFor(() => server.stats().channelMembers === 0, { message: 'left' });
    expect(errors).toEqual([]);
  });

  it('ends a join without the permission with onError FORBIDDEN; a broadcast without it rejects FORBIDDEN', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const outsider = open(server.wsUrl, OUTSIDER);
    const errors: unknown[] = [];
    const retries: unknown[] = [];
    outsider.joinChannel('chat.room-7', { onMessage: () => {}, onError: (error) => void errors.push(error), onRetry: (error) => void retries.push(error) });
    await waitFor(() => errors.length === 1, { message: 'the refusal' });
    expect(errors[0]).toBeInstanceOf(TributaryRequestError);
    expect((errors[0] as TributaryRequestError).code).toBe('FORBIDDEN');
    expect(retries).toEqual([]);

    const refused = await outsider.broadcast('chat.room-7', 'typing', { user: 'eve' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TributaryRequestError);
    expect((refused as TributaryRequestError).code).toBe('FORBIDDEN');
    expect(outsider.state).toBe('connected');
  });

  it('joins again after the server closed the socket (a restart) and receives a later broadcast', async () => {
    const port = await freePort();
    const env = { JWT_SECRET: TEST_SECRET, PORT: String(port) };
    let server: TestServer = await startTestServer(env, { autoDispose: false });
    onTestFinished(() => server.dispose());
    const member = open(server.wsUrl, MEMBER);
    const sender = open(server.wsUrl, SENDER);
    const received: ChannelMessage[] = [];
    member.joinChannel('chat.room-7', { onMessage: (message) => void received.push(message) });
    await waitFor(() => server.stats().channelMembers === 1, { message: 'joined' });
    await sender.broadcast('chat.room-7', 'typing', { n: 1 });
    await waitFor(() => received.length === 1, { message: 'the first broadcast' });

    await server.dispose();
    await waitFor(() => member.state === 'reconnecting', { message: 'the member noticed' });
    server = await startTestServer(env, { autoDispose: false });
    await waitFor(() => server.stats().channelMembers === 1, { timeoutMs: 20_000, message: 'joined again' });
    await sender.broadcast('chat.room-7', 'typing', { n: 2 });
    await waitFor(() => received.length === 2, { message: 'the broadcast after the restart' });
    expect(received.map((message) => message.data)).toEqual([{ n: 1 }, { n: 2 }]);
  });
});
