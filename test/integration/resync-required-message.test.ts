/**
 * What a subscription ended by RESYNC_REQUIRED tells its client to do. Two recipes are right: a
 * topic (`events`) is subscribed again without `after`; a model (`changes`) is refetched with
 * `records`, whose cursor `changes(after:)` joins without a gap. The refusal is made where the
 * field is not known (the log, the fan-out), so the message names each recipe by its field: a
 * topic's subscriber is not told to refetch with `records`.
 */
import { describe, expect, it } from 'vitest';
import { resyncRequired } from '../../src/pipeline/log/cursor.ts';
import { subscribeEvents } from '../helpers/events.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const RECIPE = 'refetch your state and subscribe again — for `events`, without "after"; for `changes`, from the cursor a new `records` read gives';

describe('RESYNC_REQUIRED', () => {
  it('names each recipe by its field: events without "after", changes from the cursor of records', () => {
    const error = resyncRequired('events after it have expired');
    expect(error.message).toBe(`Cannot resume from this cursor (events after it have expired): ${RECIPE}`);
    expect(error).toMatchObject({ code: 'RESYNC_REQUIRED', details: { reason: 'events after it have expired' } });
  });

  it('ends a live events subscription from an unknown cursor with that message', async () => {
    const server = await startTestServer({}, { embedded: true });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'r', { topic: 'orders', after: 'garbage' });
    expect(await client.nextMessage()).toMatchObject({
      id: 'r',
      type: 'error',
      payload: [{ message: `Cannot resume from this cursor (unknown cursor): ${RECIPE}`, extensions: { code: 'RESYNC_REQUIRED' } }],
    });
  });
});
