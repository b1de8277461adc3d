import { describe, expect, it } from 'vitest';
import {
  expectSubscriptionError,
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
  waitUntilReady,
  type DeliveredEvent,
} from '../helpers/events.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

/** A cursor of the same stream and epoch whose position is `shift` past the given one. */
function cursorShiftedBy(cursor: string, shift: number): string {
  const [epoch, position] = Buffer.from(cursor, 'base64url').toString('latin1').split(':') as [string, string];
  const [major, minor] = position.split('-');
  const moved = minor === undefined ? String(Number(major) + shift) : `${major}-${Number(minor) + shift}`;
  return Buffer.from(`${epoch}:${moved}`).toString('base64url');
}

describe.each(MODES)('events resume (%s)', (mode) => {
  it('replays exactly the events after the cursor, in order, then continues live', async () => {
    const server = await startModeServer(mode);
    const published = await publishMany(server, 'orders', seqPayloads(1, 10));

    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'r', { topic: 'orders', after: published[2]?.cursor });
    const replayed = await takeEvents(client, 'r', 7);
    expect(seqsOf(replayed)).toEqual(range(4, 10));
    expect(replayed).toEqual(published.slice(3));

    await publishMany(server, 'orders', seqPayloads(11, 12));
    expect(seqsOf(await takeEvents(client, 'r', 2))).toEqual([11, 12]);
    expect(await messagesBeforePong(client)).toEqual([]);
  });

  it('replays nothing when resuming after the newest event, and delivers what follows', async () => {
    const server = await startModeServer(mode);
    const published = await publishMany(server, 'orders', seqPayloads(1, 3));
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'r', { topic: 'orders', after: published[2]?.cursor });
    await waitForSubscribers(server, 1);
    expect(await messagesBeforePong(client)).toEqual([]);

    await publishEvent(server, { topic: 'orders', payload: { seq: 4 } });
    expect(seqsOf(await takeEvents(client, 'r', 1))).toEqual([4]);
  });

  it('keeps a replay to the resuming subscriber when a live subscriber shares its cohort', async () => {
    const server = await startModeServer(mode);
    const live = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(live, 'l', { topic: 'orders' });
    await waitForSubscribers(server, 1);
    const published = await publishMany(server, 'orders', seqPayloads(1, 5));
    expect(seqsOf(await takeEvents(live, 'l', 5))).toEqual(range(1, 5));

    const resuming = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(resuming, 'r', { topic: 'orders', after: published[0]?.cursor });
    expect(seqsOf(await takeEvents(resuming, 'r', 4))).toEqual(range(2, 5));
    // `after` decides where a subscriber starts, not what it receives: one cohort for both.
    expect(server.stats()).toMatchObject({ cohorts: 1, subscribers: 2 });

    await publishEvent(server, { topic: 'orders', payload: { seq: 6 } });
    expect(seqsOf(await takeEvents(resuming, 'r', 1))).toEqual([6]);
    expect(seqsOf(await takeEvents(live, 'l', 1))).toEqual([6]);
    expect(await messagesBeforePong(live)).toEqual([]);
  });

  it('hands every resuming subscriber the exact sequence after its cursor while events are being published', async () => {
    const server = await startModeServer(mode);
    const total = 300;
    // Each subscriber subscribes right after event `at` is published, resuming after event `after`.
    const joins = [
      { at: 20, after: 1 },
      { at: 60, after: 59 },
      { at: 120, after: 60 },
      { at: 180, after: 179 },
      { at: 240, after: 10 },
      { at: 290, after: 289 },
    ];
    const clients = await Promise.all(joins.map(() => openAcknowledgedSocket(server.wsUrl)));
    const watcher = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(watcher, 'w', { topic: 'seam' });
    await waitForSubscribers(server, 1);

    const published: DeliveredEvent[] = [];
    const collected: Promise<DeliveredEvent[]>[] = [];
    // One sequential loop, so the publish order is the log order; the subscriptions are sent
    // without waiting, so their catch-up overlaps the publishes that follow.
    for (let seq = 1; seq <= total; seq++) {
      published.push(await publishEvent(server, { topic: 'seam', payload: { seq } }));
      joins.forEach((join, i) => {
        if (join.at !== seq) return;
        const client = clients[i] as RawSocket;
        subscribeEvents(client, 'r', { topic: 'seam', after: published[join.after - 1]?.cursor });
        const events = takeEvents(client, 'r', total - join.after);
        events.catch(() => undefined); // awaited below; this only keeps an early failure handled
        collected.push(events);
      });
    }

    const results = await Promise.all(collected);
    joins.forEach((join, i) => {
      expect(seqsOf(results[i] ?? []), `subscriber resuming after ${join.after}`).toEqual(range(join.after + 1, total));
      expect(results[i]?.map((event) => event.id)).toEqual(published.slice(join.after).map((event) => event.id));
    });
    expect(seqsOf(await takeEvents(watcher, 'w', total))).toEqual(range(1, total));
    for (const client of clients) expect(await messagesBeforePong(client)).toEqual([]);
  });

  it.each([
    ['a word', 'garbage'],
    ['an empty string', ''],
    ['base64 of something else', Buffer.from('not-an-epoch:12').toString('base64url')],
    ['an overlong cursor', 'A'.repeat(5000)],
  ])('ends a subscription resuming after %s with RESYNC_REQUIRED', async (_case, after) => {
    const server = await startModeServer(mode);
    await publishEvent(server, { topic: 'orders', payload: { seq: 1 } });
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'r', { topic: 'orders', after });
    await expectSubscriptionError(client, 'r', 'RESYNC_REQUIRED');
    expect(server.stats().subscribers).toBe(0);
  });

  it('ends a subscription resuming with a cursor of another topic with RESYNC_REQUIRED', async () => {
    const server = await startModeServer(mode);
    const [other] = await publishMany(server, 'invoices', seqPayloads(1, 3));
    await publishMany(server, 'orders', seqPayloads(1, 3));
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'r', { topic: 'orders', after: other?.cursor });
    await expectSubscriptionError(client, 'r', 'RESYNC_REQUIRED');

    subscribeEvents(client, 'fresh', { topic: 'fresh-topic', after: other?.cursor });
    await expectSubscriptionError(client, 'fresh', 'RESYNC_REQUIRED');
  });

  it('ends a subscription resuming from a cursor beyond the newest event with RESYNC_REQUIRED', async () => {
    const server = await startModeServer(mode);
    const published = await publishMany(server, 'orders', seqPayloads(1, 3));
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'r', { topic: 'orders', after: cursorShiftedBy(published[2]?.cursor ?? '', 5) });
    await expectSubscriptionError(client, 'r', 'RESYNC_REQUIRED');
  });

  it('ends a subscription resuming from a cursor older than the retained history with RESYNC_REQUIRED', async () => {
    const server = await startModeServer(mode, { EVENT_LOG_MAX_EVENTS: '10' });
    // Redis trims whole stream nodes (100 entries by default) under MAXLEN ~, so publish enough
    // for at least one node to go.
    const published = await publishMany(server, 'orders', seqPayloads(1, 150));
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'old', { topic: 'orders', after: published[0]?.cursor });
    await expectSubscriptionError(client, 'old', 'RESYNC_REQUIRED');

    subscribeEvents(client, 'recent', { topic: 'orders', after: published[144]?.cursor });
    expect(seqsOf(await takeEvents(client, 'recent', 5))).toEqual(range(146, 150));
  });

  it(
    mode === 'memory'
      ? 'ends a subscription resuming with a cursor from before a restart with RESYNC_REQUIRED'
      : 'resumes with a cursor from before a restart, since the log lives in Redis',
    async () => {
      const env: Record<string, string> = mode === 'redis' ? { REDIS_KEY_PREFIX: uniquePrefix() } : {};
      const first = await startModeServer(mode, env);
      const published = await publishMany(first, 'orders', seqPayloads(1, 3));
      await first.dispose();

      const second = await startModeServer(mode, env);
      const client = await openAcknowledgedSocket(second.wsUrl);
      subscribeEvents(client, 'r', { topic: 'orders', after: published[0]?.cursor });
      if (mode === 'memory') {
        await expectSubscriptionError(client, 'r', 'RESYNC_REQUIRED');
      } else {
        expect(await takeEvents(client, 'r', 2)).toEqual(published.slice(1));
      }
    },
  );
});

describe('events resume after Redis lost its data', () => {
  it('ends a subscription resuming with a cursor from before Redis restarted with RESYNC_REQUIRED', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
    const published = await publishMany(server, 'orders', seqPayloads(1, 3));

    // The private Redis keeps nothing on disk: after a restart the stream and its epoch are gone.
    await redis.stop();
    await redis.start();
    await waitUntilReady(server);
    const after = await publishEvent(server, { topic: 'orders', payload: { seq: 4 } });

    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'old', { topic: 'orders', after: published[0]?.cursor });
    await expectSubscriptionError(client, 'old', 'RESYNC_REQUIRED');
    subscribeEvents(client, 'newest-before', { topic: 'orders', after: published[2]?.cursor });
    await expectSubscriptionError(client, 'newest-before', 'RESYNC_REQUIRED');

    // The new history resumes normally.
    subscribeEvents(client, 'new', { topic: 'orders', after: after.cursor });
    await waitForSubscribers(server, 1);
    await publishEvent(server, { topic: 'orders', payload: { seq: 5 } });
    expect(seqsOf(await takeEvents(client, 'new', 1))).toEqual([5]);
  });
});
