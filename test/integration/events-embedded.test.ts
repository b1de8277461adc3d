import { describe, expect, it } from 'vitest';
import {
  MODES,
  messagesBeforePong,
  publishEvent,
  publishMany,
  range,
  seqPayloads,
  seqsOf,
  startModeServer,
  subscribeEvents,
  takeEvents,
  waitForSubscribers,
} from '../helpers/events.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

/** The embedded platform database (PGlite in memory) instead of Postgres: events work the same. */
describe.each(MODES)('events with the embedded database (%s)', (mode) => {
  it('delivers published events live and resumes after a cursor', async () => {
    const server = await startModeServer(mode, {}, { embedded: true });
    const live = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(live, 'live', { topic: 'orders' });
    await waitForSubscribers(server, 1);

    const published = await publishMany(server, 'orders', seqPayloads(1, 5));
    expect(await takeEvents(live, 'live', 5)).toEqual(published);

    const resumed = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(resumed, 'resume', { topic: 'orders', after: published[1]?.cursor });
    expect(seqsOf(await takeEvents(resumed, 'resume', 3))).toEqual(range(3, 5));

    const next = await publishEvent(server, { topic: 'orders', payload: { seq: 6 } });
    expect((await takeEvents(resumed, 'resume', 1))[0]).toEqual(next);
    expect((await takeEvents(live, 'live', 1))[0]).toEqual(next);
    expect(await messagesBeforePong(resumed)).toEqual([]);
  });
});
