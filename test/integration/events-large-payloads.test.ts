/**
 * Events as large as `EVENT_MAX_PAYLOAD_BYTES` allows (up to 16 MiB) reach a subscriber that reads
 * them, through a real server and socket. A socket's outbound buffer was bounded at a fixed 8 MiB:
 * one event over it, the next frame closed every subscriber as a slow consumer (the client saw
 * 1006), which reconnected, was sent the event again from the log, and was closed again.
 */
import { describe, expect, it } from 'vitest';
import { publishEvent, startModeServer, subscribeEvents, takeEvents, waitForSubscribers } from '../helpers/events.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const MIB = 1024 * 1024;

describe('events near the payload limit', () => {
  it('reach a subscriber that reads them, several at once, without closing it as a slow consumer', { timeout: 60_000 }, async () => {
    const server = await startModeServer('memory', { EVENT_MAX_PAYLOAD_BYTES: String(12 * MIB), HTTP_MAX_BODY_BYTES: String(16 * MIB) });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 's', { topic: 'files' });
    await waitForSubscribers(server, 1);

    const blob = 'x'.repeat(10 * MIB);
    const published = await Promise.all([1, 2, 3].map((n) => publishEvent(server, { topic: 'files', payload: { n, blob } })));
    const received = await takeEvents(client, 's', 3);

    expect(received.map((event) => event.id).sort()).toEqual(published.map((event) => event.id).sort());
    expect(received.every((event) => (event.payload as { blob: string }).blob.length === blob.length)).toBe(true);
  });
});
