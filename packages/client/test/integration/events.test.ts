/**
 * subscribeEvents against real servers: resume across a restart with no gap (Redis mode, the log
 * survives), RESYNC_REQUIRED when the history is gone (memory mode), a dead socket found by the
 * ping timeout and replaced, and the connection states on the way.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type ClientOptions, type ConnectionState, type TopicEvent, type TributaryClient } from '@tributary/client';
import { publishMany, seqPayloads } from '../../../../test/helpers/events.ts';
import { freePort } from '../../../../test/helpers/free-port.ts';
import { testRedisUrl, uniquePrefix } from '../../../../test/helpers/services.ts';
import { startTcpProxy } from '../../../../test/helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { startTestServer, type TestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const READER = { sub: 'reader', tenant: 'tenant-a', permissions: ['orders.read'] };
const PUBLISHER = { sub: 'publisher', tenant: 'tenant-a', permissions: ['orders.publish'] };
/** Fast retries for tests: the schedule's shape is unit-tested. */
const FAST: Partial<ClientOptions> = { backoff: { initialMs: 50, maxMs: 200 } };

function client(url: string, options: Partial<ClientOptions> = {}): { client: TributaryClient; states: ConnectionState[] } {
  const states: ConnectionState[] = [];
  const created = createClient({ url, getToken: () => signHs256(READER), ...FAST, ...options });
  created.onStateChange((state) => states.push(state));
  onTestFinished(() => created.close());
  return { client: created, states };
}

function seqs(events: readonly TopicEvent[]): unknown[] {
  return events.map((event) => (event.payload as { seq: number }).seq);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_unused, i) => from + i);
}

describe('subscribeEvents', () => {
  it('resumes after a server restart with no gap: events published while it was down arrive once, in order (Redis mode)', async () => {
    const port = await freePort();
    const env = { JWT_SECRET: TEST_SECRET, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    let server: TestServer = await startTestServer({ ...env, PORT: String(port) }, { autoDispose: false });
    onTestFinished(() => server.dispose());
    // A second instance on the same Redis publishes while the first is down.
    const other = await startTestServer(env);
    const publisher = await signHs256(PUBLISHER);

    const { client: tributary, states } = client(server.wsUrl);
    const received: TopicEvent[] = [];
    const subscription = tributary.subscribeEvents('orders.created', { onEvent: (event) => void received.push(event) });
    await waitFor(() => server.stats().subscribers === 1, { message: 'subscribed' });
    await publishMany(server, 'orders.created', seqPayloads(1, 3), publisher);
    await waitFor(() => received.length === 3, { message: 'the first events' });

    await server.dispose();
    await waitFor(() => tributary.state === 'reconnecting', { message: 'the client noticed' });
    await publishMany(other, 'orders.created', seqPayloads(4, 6), publisher);
    server = await startTestServer({ ...env, PORT: String(port) }, { autoDispose: false });
    await waitFor(() => received.length === 6, { timeoutMs: 20_000, message: 'the events of the gap' });
    await publishMany(server, 'orders.created', seqPayloads(7, 9), publisher);
    await waitFor(() => received.length === 9, { message: 'live again' });

    expect(seqs(received)).toEqual(range(1, 9));
    expect(new Set(received.map((event) => event.id)).size).toBe(9);
    expect(subscription.cursor).toBe(received[8]!.cursor);
    expect(states[0]).toBe('connected');
    expect(states).toContain('reconnecting');
    expect(states.at(-1)).toBe('connected');
  });

  it('refills on RESYNC_REQUIRED: the history was lost in a restart (memory mode), onResync runs, the stream goes on', async () => {
    const port = await freePort();
    const env = { JWT_SECRET: TEST_SECRET, PORT: String(port) };
    let server = await startTestServer(env, { autoDispose: false });
    onTestFinished(() => server.dispose());
    const publisher = await signHs256(PUBLISHER);
    const { client: tributary, states } = client(server.wsUrl);
    const received: TopicEvent[] = [];
    let resyncs = 0;
    tributary.subscribeEvents('orders.created', {
      onEvent: (event) => void received.push(event),
      onResync: () => {
        resyncs += 1;
        expect(tributary.state).toBe('resyncing');
      },
    });
    await waitFor(() => server.stats().subscribers === 1, { message: 'subscribed' });
    await publishMany(server, 'orders.created', seqPayloads(1, 2), publisher);
    await waitFor(() => received.length === 2, { message: 'the first events' });

    await server.dispose();
    server = await startTestServer(env, { autoDispose: false });
    await waitFor(() => resyncs === 1 && server.stats().subscribers === 1, { timeoutMs: 20_000, message: 'resynced and subscribed again' });
    await publishMany(server, 'orders.created', seqPayloads(3, 4), publisher);
    await waitFor(() => received.length === 4, { message: 'the stream goes on' });
    expect(seqs(received)).toEqual([1, 2, 3, 4]);
    expect(states).toContain('resyncing');
    expect(states.at(-1)).toBe('connected');
  });

  it("goes on when an application's onEvent throws: the error goes to onError, the socket stays, other subscriptions get their events", async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const publisher = await signHs256(PUBLISHER);
    const errors: unknown[] = [];
    const { client: tributary, states } = client(server.wsUrl, { onError: (error) => void errors.push(error) });
    const failing: TopicEvent[] = [];
    const other: TopicEvent[] = [];
    const subscriptions = [
      tributary.subscribeEvents('orders.failing', {
        onEvent: (event) => {
          failing.push(event);
          throw new Error(`cannot handle ${(event.payload as { seq: number }).seq}`);
        },
      }),
      tributary.subscribeEvents('orders.other', { onEvent: (event) => void other.push(event) }),
    ];
    await waitFor(() => subscriptions.every((subscription) => subscription.cursor !== undefined), { message: 'positioned' });
    await waitFor(() => server.stats().subscribers === 2, { message: 'subscribed' });
    await publishMany(server, 'orders.failing', seqPayloads(1, 3), publisher);
    await publishMany(server, 'orders.other', seqPayloads(1, 3), publisher);
    await waitFor(() => other.length === 3 && failing.length === 3, { message: 'every event to both' });
    expect(seqs(failing)).toEqual([1, 2, 3]);
    expect(seqs(other)).toEqual([1, 2, 3]);
    expect(errors.map((error) => (error as Error).message)).toEqual(['cannot handle 1', 'cannot handle 2', 'cannot handle 3']);
    // One socket all along.
    expect(states).toEqual(['connected']);
  });

  it('finds a socket that stopped answering by its ping timeout, replaces it, and resumes without losing an event', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const proxy = await startTcpProxy(server.port);
    const publisher = await signHs256(PUBLISHER);
    const { client: tributary, states } = client(`ws://127.0.0.1:${proxy.port}/graphql`, { pingIntervalMs: 100, pongTimeoutMs: 300 });
    const received: TopicEvent[] = [];
    tributary.subscribeEvents('orders.created', { onEvent: (event) => void received.push(event) });
    await waitFor(() => server.stats().subscribers === 1, { message: 'subscribed' });
    await publishMany(server, 'orders.created', seqPayloads(1, 2), publisher);
    await waitFor(() => received.length === 2, { message: 'the first events' });

    // The socket stays open on both ends but nothing passes: only the missing pong can tell.
    proxy.blackhole(true);
    await publishMany(server, 'orders.created', seqPayloads(3, 4), publisher);
    // New connections pass the proxy, so `reconnecting` lasts only the first backoff (50 ms):
    // the recorded transitions are waited on, not the state a poll happens to see.
    await waitFor(() => states.includes('reconnecting'), { timeoutMs: 10_000, message: 'the dead socket was noticed' });
    await waitFor(() => states.lastIndexOf('connected') > states.indexOf('reconnecting'), { timeoutMs: 10_000, message: 'a new socket' });
    await waitFor(() => received.length === 4, { message: 'the events sent into the dead socket' });
    await publishMany(server, 'orders.created', seqPayloads(5, 5), publisher);
    await waitFor(() => received.length === 5, { message: 'live again' });
    expect(seqs(received)).toEqual([1, 2, 3, 4, 5]);
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
  });
});
