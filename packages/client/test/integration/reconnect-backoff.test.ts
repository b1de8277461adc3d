/**
 * The reconnection schedule across sockets the server acknowledges and then closes (an error on
 * every operation, a slow consumer…): the waits grow as for sockets that never opened, and start
 * again only after a socket that stayed up. Against a scripted server; the waits are recorded
 * (`backoff-waits.ts`) and run at once.
 */
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type TributaryClient } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { NEVER_MS, recordBackoffWaits } from '../helpers/backoff-waits.ts';
import { startScriptedServer } from '../helpers/scripted-server.ts';

function connect(url: string): TributaryClient {
  const client = createClient({ url, webSocketImpl: WebSocket, pingIntervalMs: NEVER_MS, connectTimeoutMs: NEVER_MS });
  onTestFinished(() => client.close());
  return client;
}

describe('reconnection after acknowledged sockets', () => {
  it('waits longer after each socket closed soon after its acknowledgement, instead of starting the schedule again at every ack', async () => {
    // Every operation closes its socket: the subscription's first request (topicCursor) does, each time.
    const server = await startScriptedServer((_operation, reply) => reply.socket.close(4500, 'Internal server error'));
    const { waits } = recordBackoffWaits({ atOnce: true });
    const client = connect(server.url);
    client.subscribeEvents('orders', { onEvent: () => {} });
    await waitFor(() => waits.length >= 4, { message: 'four reconnections' });
    expect(waits.slice(0, 4)).toEqual([990, 1980, 3960, 7920]);
    expect(server.sockets.length).toBeGreaterThanOrEqual(4);
  });

  it('starts the schedule again after a socket that stayed up (a deploy after a quiet while)', async () => {
    // The first two sockets close at once after their acknowledgement; the third when the test says.
    const server = await startScriptedServer(() => {}, { onAcknowledged: (socket, index) => index < 2 && socket.close(1001, 'Going away') });
    const { waits } = recordBackoffWaits({ atOnce: true });
    const client = connect(server.url);
    await waitFor(() => server.sockets.length === 3 && client.state === 'connected', { message: 'the third socket acknowledged' });
    expect(waits).toEqual([990, 1980]);
    // Ten seconds later (by the clock the client reads), the server goes away.
    const now = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => now() + 10_000);
    server.sockets[2]!.close(1001, 'Going away');
    await waitFor(() => waits.length === 3, { message: 'the next reconnection' });
    expect(waits).toEqual([990, 1980, 990]);
  });
});
