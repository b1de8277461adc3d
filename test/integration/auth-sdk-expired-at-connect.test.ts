/**
 * `@tributary/client` and a token already expired at `connection_init`, which the server now
 * closes with 4419 before any `connection_ack` (it said 4403): the client retries with backoff,
 * asking `getToken` again each time — not at once and for ever, which a 4419 on an open socket
 * means — and ends `unauthorized` when `getToken` keeps handing out an expired token.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type ConnectionState } from '@tributary/client';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** The client's retries of an expired token at connect before `unauthorized` (its STALE_TOKEN_RETRIES). */
const RETRIES = 5;

async function clientOf(getToken: () => Promise<string>) {
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
  const states: ConnectionState[] = [];
  const client = createClient({ url: server.wsUrl, getToken, backoff: { initialMs: 50, maxMs: 200 } });
  client.onStateChange((state) => states.push(state));
  onTestFinished(() => client.close());
  return { client, states };
}

describe('a token expired at connect (4419 before connection_ack)', () => {
  it('is retried a few times with a token from getToken, then unauthorized, when getToken keeps an expired one', async () => {
    let calls = 0;
    const { client, states } = await clientOf(() => {
      calls += 1;
      return signHs256({ sub: 'stale' }, { expiresInSeconds: -60 });
    });

    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });

    expect(calls).toBe(1 + RETRIES);
    expect(states.at(-1)).toBe('unauthorized');
  });

  it('connects once getToken hands out a fresh token', async () => {
    let calls = 0;
    const { client, states } = await clientOf(() => {
      calls += 1;
      return signHs256({ sub: 'renewed' }, { expiresInSeconds: calls <= 2 ? -60 : 3600 });
    });

    await waitFor(() => client.state === 'connected', { message: 'connected' });

    expect(calls).toBe(3);
    expect(states).not.toContain('unauthorized');
  });
});
