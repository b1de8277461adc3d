/**
 * A clean stop with Redis says nothing alarming: the live bus closes before the clients do, so the
 * subscriber connection's `close` at the end is not taken for an outage ("live channel connection
 * lost"), and no other step warns or fails.
 */
import { expect, it } from 'vitest';
import { publishEvent, subscribeEvents, takeEvents } from '../helpers/events.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { captureLogs, startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

it('stops a server with Redis, a live subscription open, without a warning or an error in its log', async () => {
  const logs = captureLogs();
  const server = await startTestServer({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'debug' }, { logDestination: logs, autoDispose: false });
  try {
    // A stream joined over the bus: its SUBSCRIBE is on the shared subscriber connection.
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 's', { topic: 'orders' });
    await waitFor(() => server.stats().subscribers === 1 && server.stats().joining === 0, { message: 'the stream joined' });
    const published = await publishEvent(server, { topic: 'orders', payload: { n: 1 } });
    const [delivered] = await takeEvents(client, 's', 1);
    expect(delivered?.id).toBe(published.id);
  } finally {
    const before = logs.lines.length;
    await server.dispose();
    const shutdown = logs.lines.slice(before);
    expect(shutdown.filter((line) => line.level >= 40)).toEqual([]);
    // The capture saw the whole stop, down to the clients' close.
    expect(shutdown).toContainEqual(expect.objectContaining({ msg: 'shutdown step done', step: 'clients' }));
  }
});
