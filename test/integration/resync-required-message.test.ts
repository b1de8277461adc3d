/**
 * What a subscription ended by RESYNC_REQUIRED tells its client to do. Two recipes are right: a
 * model (`changes`) is refetched with `records`, whose cursor `changes(after:)` joins without a
 * gap; a topic (`events`) is subscribed again without `after`. The message names both.
 */
import { describe, expect, it } from 'vitest';
import { resyncRequired } from '../../src/pipeline/log/cursor.ts';
import { subscribeEvents } from '../helpers/events.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const RECIPE = 'refetch the current state — `records` for a model, which gives a cursor — and subscribe again from its cursor, or without "after"';

describe('RESYNC_REQUIRED', () => {
  it('names the records-then-changes recipe as well as a subscription without "after"', () => {
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
