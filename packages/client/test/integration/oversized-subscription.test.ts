/**
 * A subscription whose `subscribe` message is too big for the server (WS_MAX_PAYLOAD_BYTES, 1009)
 * stops with an error of its own instead of closing every socket the client opens — and every
 * other subscription with it — for ever: refused before it is sent when it is over
 * `maxMessageBytes`, stopped after one 1009 when the server's limit is lower than the client knew.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, MessageTooLargeError, type ConnectionState, type TopicEvent, type TributaryClient } from '@tributary/client';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { startTestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const USER = { sub: 'sdk-user', tenant: 'tenant-a', permissions: ['sdk.read', 'sdk.publish'] };

function open(url: string): { client: TributaryClient; states: ConnectionState[] } {
  const states: ConnectionState[] = [];
  const client = createClient({ url, getToken: () => signHs256(USER), backoff: { initialMs: 10, maxMs: 50 } });
  client.onStateChange((state) => states.push(state));
  onTestFinished(() => client.close());
  return { client, states };
}

/** A healthy subscription beside the big one; resolves once the server holds both (the big one refused or not). */
function subscribeBoth(client: TributaryClient, filterChars: number) {
  const good: TopicEvent[] = [];
  const goodErrors: unknown[] = [];
  const bigErrors: unknown[] = [];
  client.subscribeEvents('sdk.ok', { onEvent: (event) => void good.push(event), onError: (error) => void goodErrors.push(error) });
  client.subscribeEvents('sdk.big', { where: { field: 'payload.k', eq: 'x'.repeat(filterChars) }, onEvent: () => {}, onError: (error) => void bigErrors.push(error) });
  return { good, goodErrors, bigErrors };
}

describe('an oversized subscription', () => {
  it('is refused before it is sent when over maxMessageBytes (default 1 MiB): onError, and the socket stays up', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const { client, states } = open(server.wsUrl);
    const { good, goodErrors, bigErrors } = subscribeBoth(client, 1_100_000);

    await waitFor(() => bigErrors.length === 1, { message: 'the big subscription’s error' });
    const [error] = bigErrors;
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect((error as MessageTooLargeError).code).toBe('BAD_USER_INPUT');
    expect((error as MessageTooLargeError).errors[0]?.extensions).toMatchObject({ reason: 'MESSAGE_TOO_LARGE', maxBytes: 1_048_576 });
    expect((error as MessageTooLargeError).bytes).toBeGreaterThan(1_100_000);

    await waitFor(() => server.stats().subscribers === 1, { message: 'the healthy subscription' });
    for (let i = 1; i <= 3; i++) await client.publish('sdk.ok', { i });
    await waitFor(() => good.length === 3, { message: 'the healthy subscription’s events' });
    expect(good.map((event) => event.payload)).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }]);
    expect(goodErrors).toEqual([]);
    expect(states).toEqual(['connected']);
  });

  it('is stopped after one 1009 when the server’s limit is lower: the other subscription resumes, no loop', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WS_MAX_PAYLOAD_BYTES: '4096' });
    const { client, states } = open(server.wsUrl);
    const { good, goodErrors, bigErrors } = subscribeBoth(client, 8_000);

    await waitFor(() => bigErrors.length === 1, { message: 'the big subscription’s error' });
    const [error] = bigErrors;
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect((error as MessageTooLargeError).code).toBe('BAD_USER_INPUT');
    expect((error as MessageTooLargeError).closeCode).toBe(1009);

    await waitFor(() => client.state === 'connected' && server.stats().subscribers === 1, { message: 'the healthy subscription, on a new socket' });
    for (let i = 1; i <= 3; i++) await client.publish('sdk.ok', { i });
    await waitFor(() => good.length === 3, { message: 'the healthy subscription’s events' });
    expect(goodErrors).toEqual([]);
    expect(bigErrors).toHaveLength(1);
    // One socket lost to the big subscription, not one per reconnection.
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
  });
});
