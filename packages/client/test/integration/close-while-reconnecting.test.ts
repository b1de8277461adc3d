/**
 * `close()` while the client waits for its next attempt (the server is away): no retry timer is
 * left behind — a Node service that closes its client during an outage exits at once instead of
 * when the backoff runs out. Real sockets (`ws`: Node's own WebSocket keeps an internal timer of
 * undici's) to a TCP server that drops every connection; only the timers are faked, to count what
 * is left.
 */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type TributaryClient } from '@tributary/client';

/** A port whose server closes every connection at once: every attempt fails. */
async function refusingServer(): Promise<number> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

function reconnecting(client: TributaryClient): Promise<void> {
  return new Promise((resolve) => {
    const stop = client.onStateChange((state) => {
      if (state !== 'reconnecting') return;
      stop();
      resolve();
    });
  });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('close() while reconnecting', () => {
  it('clears the pending retry timer', async () => {
    const port = await refusingServer();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, backoff: { initialMs: 600_000, maxMs: 600_000 } });
    await reconnecting(client);
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    client.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('schedules no retry when a state listener closes the client as the socket is lost', async () => {
    const port = await refusingServer();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, backoff: { initialMs: 600_000, maxMs: 600_000 } });
    client.onStateChange((state) => {
      if (state === 'reconnecting') client.close();
    });
    const closed = new Promise<void>((resolve) => client.onStateChange((state) => state === 'closed' && resolve()));
    await closed;
    expect(client.state).toBe('closed');
    expect(vi.getTimerCount()).toBe(0);
  });
});
