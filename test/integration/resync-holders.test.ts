/**
 * When a stream's history is replaced (a replication slot recreated, Redis restarted without its
 * data), only the subscribers that hold a position in the old history can have missed something:
 * they are told RESYNC_REQUIRED. A subscriber that joined without a cursor holds none, so it gets
 * the new history's changes — even while an older subscriber of the same stream, on the same
 * instance and in the same cohort, is being told to resync.
 */
import { describe, expect, it } from 'vitest';
import {
  bumpItems,
  cdcEnv,
  configureSource,
  createItemsTable,
  dropSlotUntilRecreated,
  insertItems,
  openPool,
  replicationNamesOf,
  subscribeItems,
  waitUntilDelivered,
  waitUntilLeading,
  type ItemsFeed,
} from '../helpers/cdc-resilience.ts';
import {
  messagesBeforePong,
  publishMany,
  seqPayloads,
  seqsOf,
  subscribeEvents,
  takeEvents,
  takeUntil,
  waitForSubscribers,
  waitUntilReady,
} from '../helpers/events.ts';
import { createTestDatabase, startPrivateRedis, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

/** Subscribes to the items' `events` and `changes` and waits until the server counts both. */
async function subscribeOn(server: TestServer): Promise<ItemsFeed> {
  const before = server.stats().subscribers;
  const feed = await subscribeItems(server);
  await waitFor(() => server.stats().subscribers === before + 2, { message: 'both subscriptions are dispatched' });
  return feed;
}

function codeOf(message: ReceivedMessage): string | undefined {
  return (message.payload as { extensions?: { code?: string } }[] | undefined)?.[0]?.extensions?.code;
}

describe('a stream whose history is replaced', () => {
  it('after a replication slot is recreated, resyncs the subscriber holding an old position and delivers the change to a fresh one beside it', { timeout: 60_000 }, async () => {
    const source = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    const env = cdcEnv({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const server = await startTestServer(env);
    await configureSource(server, source.url);
    await waitUntilLeading(server);
    const old = await subscribeOn(server);
    await insertItems(pool, [1]);
    await waitUntilDelivered(pool, [old.events, old.changes]);

    await dropSlotUntilRecreated(pool, (await replicationNamesOf(pool)).slotName);
    // Same instance, same operations and variables as the old subscriber: the same cohorts.
    const fresh = await subscribeOn(server);
    await bumpItems(pool, [1]);

    await waitFor(() => old.others.length >= 2 && (fresh.others.length > 0 || (fresh.events.length > 0 && fresh.changes.length > 0)), {
      timeoutMs: 15_000,
      message: 'both subscribers hear of the first change of the new history',
    });
    expect(old.others.map((message) => [message.id, message.type, codeOf(message)]).sort()).toEqual([
      ['c', 'error', 'RESYNC_REQUIRED'],
      ['e', 'error', 'RESYNC_REQUIRED'],
    ]);
    expect([...old.events, ...old.changes].map(({ entity, value }) => ({ entity, value }))).toEqual([
      { entity: 1, value: 0 },
      { entity: 1, value: 0 },
    ]);
    expect(fresh.others).toEqual([]);
    for (const received of [fresh.events, fresh.changes]) {
      expect(received.map(({ entity, value }) => ({ entity, value }))).toEqual([{ entity: 1, value: 1 }]);
    }
  });

  it('after Redis restarts without its data, resyncs the subscriber holding an old position and delivers every later event to a fresh one beside it', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
    const old = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(old, 'old', { topic: 'orders' });
    await waitForSubscribers(server, 1);
    await publishMany(server, 'orders', seqPayloads(1, 2));
    expect(seqsOf(await takeEvents(old, 'old', 2))).toEqual([1, 2]);

    // The private Redis keeps nothing on disk. The fresh subscriber joins while it is away, so the
    // instance still serves the stream of the old history when it arrives.
    await redis.stop();
    const fresh = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(fresh, 'fresh', { topic: 'orders' });
    await waitForSubscribers(server, 2);
    await redis.start();
    await waitUntilReady(server);
    const after = await publishMany(server, 'orders', seqPayloads(3, 5));

    expect(await takeUntil(old, (message) => message.type !== 'next')).toMatchObject([
      { id: 'old', type: 'error', payload: [{ extensions: { code: 'RESYNC_REQUIRED' } }] },
    ]);
    expect(await takeEvents(fresh, 'fresh', 3)).toEqual(after);
    expect(await messagesBeforePong(fresh)).toEqual([]);
    await waitForSubscribers(server, 1);
  });
});
