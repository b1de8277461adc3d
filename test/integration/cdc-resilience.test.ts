/**
 * Database CDC under failure, end to end: real source databases (logical WAL), Redis, servers and
 * sockets. Every test ends by comparing what subscribers received with the source table —
 * per row the complete history 0…v in order, redeliveries (at least once) allowed but always
 * with the id of the first delivery — and reports how many redeliveries it saw.
 */
import { Redis } from 'ioredis';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  bumpItems,
  cdcEnv,
  configureSource,
  createItemsTable,
  currentWalLsn,
  dropSlotUntilRecreated,
  expectCompleteHistory,
  gql,
  ids,
  insertItems,
  itemEventsLogKey,
  lsnDiff,
  openPool,
  readerStatus,
  derivedNamesOf,
  replicationNamesOf,
  slotRow,
  startChildServer,
  subscribeItems,
  terminateWalsender,
  waitUntilDelivered,
  waitForStatus,
  waitUntilLeading,
  type ItemChange,
  type ItemsFeed,
} from '../helpers/cdc-resilience.ts';
import { decodeCursor } from '../../src/pipeline/log/cursor.ts';
import { createTestDatabase, startPrivatePostgres, startPrivateRedis, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';
import type { ReceivedMessage } from '../helpers/ws-client.ts';

/** A command connection of the test's own, closed when it ends. */
function redisClient(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  onTestFinished(() => void redis.disconnect());
  return redis;
}

/** Waits until `server` counts `count` more subscribers than `before`. */
async function subscribersAdded(server: TestServer, before: number, count: number): Promise<void> {
  await waitFor(() => server.stats().subscribers === before + count, { message: `${count} subscribers added` });
}

/** The test's feeds, for the message of a count that is not reached. */
const feedsOfTest: ItemsFeed[] = [];
beforeEach(() => {
  feedsOfTest.length = 0;
});

async function subscribeOn(server: TestServer, options: Parameters<typeof subscribeItems>[1] = {}): Promise<ItemsFeed> {
  const before = server.stats().subscribers;
  const feed = await subscribeItems(server, options);
  feedsOfTest.push(feed);
  try {
    await subscribersAdded(server, before, 2);
  } catch (error) {
    // What each socket received besides changes says why (an error, a resync), the stats where the count stands.
    const feeds = feedsOfTest.map(({ others, events, changes, closedWith }) => ({ others, events: events.length, changes: changes.length, closedWith }));
    throw new Error(`${(error as Error).message}; ${JSON.stringify({ stats: server.stats(), feeds })}`, { cause: error });
  }
  return feed;
}

/** Ids of the subscriptions that ended with RESYNC_REQUIRED, sorted. */
function resyncedSubscriptions(messages: readonly ReceivedMessage[]): string[] {
  const codeOf = (message: ReceivedMessage) => (message.payload as { extensions?: { code?: string } }[] | undefined)?.[0]?.extensions?.code;
  return messages
    .filter((message) => message.type === 'error' && codeOf(message) === 'RESYNC_REQUIRED')
    .map((message) => message.id ?? '')
    .sort();
}

describe('CDC resilience', () => {
  it('publishes again, with the same event ids, a transaction that was received but not acknowledged when the server stopped', { timeout: 60_000 }, async ({ annotate }) => {
    const source = await createTestDatabase();
    const platform = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    const keyPrefix = uniquePrefix();
    const env = cdcEnv({ DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: keyPrefix });
    const first = await startTestServer(env);
    await configureSource(first, source.url);
    await waitUntilLeading(first);
    const feed = await subscribeOn(first);
    await insertItems(pool, ids(1, 4));
    await bumpItems(pool, ids(1, 4));
    await waitUntilDelivered(pool, [feed.events, feed.changes]);
    const beforeCrash = feed.events.length;

    // Tenant p's topic stream starts here (a cursor into it), then its log key holds a string:
    // appending to it fails with WRONGTYPE, so a transaction touching p is received and partly
    // published (tenant t1's events go out) but never completes, and is never acknowledged.
    const poisonTenant = await signHs256({ tenant: 'p', permissions: ['inv.item-events.read'] });
    const cursor = await gql(first, poisonTenant, '{ topicCursor(topic: "inv.item-events") }');
    const poisonCursor = cursor.data?.['topicCursor'] as string;
    const redis = redisClient(testRedisUrl());
    await redis.set(itemEventsLogKey(keyPrefix, 'p'), 'not a stream');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('UPDATE items SET value = value + 1 WHERE id = 1');
      await client.query('UPDATE items SET value = value + 1 WHERE id = 2');
      await client.query(`INSERT INTO items (id, tenant_id, value) VALUES (5, 't1', 0), (100, 'p', 0)`);
      await client.query('UPDATE items SET value = value + 1 WHERE id = 1');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    // The t1 part arrives, and arrives again: the reader received the transaction once more
    // because it had not acknowledged it.
    await waitFor(
      () => {
        const after = feed.events.slice(beforeCrash);
        return after.length > new Set(after.map((event) => event.eventId)).size;
      },
      { message: 'the t1 events of the stuck transaction are delivered twice' },
    );
    const stuck = feed.events.slice(beforeCrash);
    expect(new Set(stuck.map((event) => `${event.entity}:${event.value}`))).toEqual(new Set(['1:2', '2:2', '5:0', '1:3']));
    const idsBeforeCrash = new Map(stuck.map((event) => [`${event.entity}:${event.value}`, event.eventId]));

    await first.dispose();
    // The log key back as the cursor's HEAD left it (an empty stream whose last id is the cursor's):
    // deleted only, it would be an epoch without its log, which a non-zero cursor may not resume
    // from (RESYNC_REQUIRED) until the restarted server appends p's row again — a race.
    await redis.del(itemEventsLogKey(keyPrefix, 'p'));
    await redis.xadd(itemEventsLogKey(keyPrefix, 'p'), 'MAXLEN', '0', decodeCursor(poisonCursor).position, 'h', '');
    const second = await startTestServer(env);
    const resumed = await subscribeOn(second, { eventsAfter: feed.events.at(-1)?.cursor, changesAfter: feed.changes.at(-1)?.cursor });
    const poisoned = await subscribeOn(second, { tenant: 'p', eventsAfter: poisonCursor });

    const rows = await waitUntilDelivered(pool, [() => [...feed.events, ...resumed.events], () => [...feed.changes, ...resumed.changes]]);
    const events = expectCompleteHistory([...feed.events, ...resumed.events], rows);
    const changes = expectCompleteHistory([...feed.changes, ...resumed.changes], rows);
    // The restarted server published the whole transaction again, under the same ids (the first
    // server's copies may complete the history before the second's arrive).
    await waitFor(() => resumed.events.length >= idsBeforeCrash.size, { message: 'the restarted server publishes the transaction again' });
    const redelivered = new Map(resumed.events.map((event) => [`${event.entity}:${event.value}`, event.eventId]));
    expect(redelivered).toEqual(idsBeforeCrash);
    // And the change that could not be published before the restart is delivered after it.
    await waitFor(() => poisoned.events.length > 0, { message: 'tenant p receives its row' });
    expect(poisoned.events.map(({ entity, value }) => ({ entity, value }))).toEqual([{ entity: 100, value: 0 }]);
    expect([...feed.others, ...resumed.others, ...poisoned.others]).toEqual([]);
    await annotate(`duplicates: events ${events.duplicates}/${events.received}, changes ${changes.duplicates}/${changes.received}`);
  });

  it('delivers every row received while the event log was unreachable, once Redis is back', { timeout: 60_000 }, async ({ annotate }) => {
    const source = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    const redisServer = await startPrivateRedis({ persistent: true });
    const server = await startTestServer(cdcEnv({ REDIS_URL: redisServer.url, REDIS_KEY_PREFIX: uniquePrefix() }));
    await configureSource(server, source.url);
    await waitUntilLeading(server);
    const feed = await subscribeOn(server);
    await insertItems(pool, ids(1, 5));
    await waitUntilDelivered(pool, [feed.events, feed.changes]);

    await redisServer.stop();
    await insertItems(pool, ids(6, 10));
    await bumpItems(pool, ids(1, 10));
    // The reader received a change and could not publish it.
    await waitFor(async () => (await readerStatus(server))?.lastError?.includes('event log') === true, {
      message: 'the reader reports the unavailable log',
    });
    await redisServer.start();
    await bumpItems(pool, ids(1, 10));

    const rows = await waitUntilDelivered(pool, [feed.events, feed.changes], 30_000);
    const events = expectCompleteHistory(feed.events, rows);
    const changes = expectCompleteHistory(feed.changes, rows);
    expect(feed.others).toEqual([]);
    await annotate(`duplicates: events ${events.duplicates}/${events.received}, changes ${changes.duplicates}/${changes.received}`);
  });

  it('loses nothing when the walsender is terminated mid-transaction and Postgres restarts mid-stream', { timeout: 120_000 }, async ({ annotate }) => {
    const postgres = await startPrivatePostgres();
    const pool = openPool(postgres.url);
    await createItemsTable(pool);
    const env = cdcEnv({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const server = await startTestServer(env);
    await configureSource(server, postgres.url);
    await waitUntilLeading(server);
    const feed = await subscribeOn(server);
    await insertItems(pool, ids(1, 10));
    await bumpItems(pool, ids(1, 10), 2);

    // One transaction of 3,000 rows (three chunks, ~1.5 MB of WAL); its walsender is ended as
    // soon as its first events arrive, so the rest of it is received again from its beginning.
    await pool.query(`INSERT INTO items SELECT g, 't1', 0, repeat('x', 500) FROM generate_series(1001, 4000) g`);
    await waitFor(() => feed.events.some((event) => event.entity > 1000), { message: 'the big transaction starts to arrive' });
    await terminateWalsender(pool, (await replicationNamesOf(pool)).slotName);
    await waitUntilDelivered(pool, [feed.events, feed.changes], 30_000);

    // Rows committed one by one while Postgres crashes and comes back; a write that fails waits
    // for the restart and is retried (idempotently), and the table says what was committed.
    const restarted = deferred();
    const retrying = async (write: () => Promise<void>) => {
      for (;;) {
        try {
          return await write();
        } catch {
          await restarted.promise;
        }
      }
    };
    const writer = (async () => {
      for (const id of ids(20_001, 20_200)) {
        await retrying(() => insertItems(pool, [id]));
        if (id % 10 === 0) await retrying(() => bumpItems(pool, ids(1, 10)));
      }
    })();
    await waitFor(() => feed.events.some((event) => event.entity > 20_020), { message: 'the writes stream' });
    await postgres.stop('immediate');
    await postgres.start();
    restarted.resolve();
    await writer;

    const rows = await waitUntilDelivered(pool, [feed.events, feed.changes], 30_000);
    const events = expectCompleteHistory(feed.events, rows);
    const changes = expectCompleteHistory(feed.changes, rows);
    expect(feed.others).toEqual([]);
    await annotate(
      `${rows.length} rows; duplicates: events ${events.duplicates}/${events.received}, changes ${changes.duplicates}/${changes.received}`,
    );
  });

  it('fails over to the follower when the leader is disposed: subscribers of the follower receive every row', { timeout: 60_000 }, async ({ annotate }) => {
    const source = await createTestDatabase();
    const platform = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    const env = cdcEnv({ DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const leader = await startTestServer(env);
    await configureSource(leader, source.url);
    await waitUntilLeading(leader);
    const follower = await startTestServer(env);
    await waitFor(async () => (await readerStatus(follower))?.leading === false, { message: 'the follower knows the source' });
    const feed = await subscribeOn(follower);
    await insertItems(pool, ids(1, 10));
    await waitUntilDelivered(pool, [feed.events, feed.changes]);

    // The leader goes while rows are being written and delivered.
    const writer = bumpItems(pool, ids(1, 10), 10);
    await waitFor(() => feed.events.some((event) => event.value >= 2), { message: 'updates stream' });
    const stoppedAt = performance.now();
    await leader.dispose();
    await waitUntilLeading(follower);
    const failoverMs = Math.round(performance.now() - stoppedAt);
    await writer;
    await insertItems(pool, ids(11, 20));

    const rows = await waitUntilDelivered(pool, [feed.events, feed.changes]);
    const events = expectCompleteHistory(feed.events, rows);
    const changes = expectCompleteHistory(feed.changes, rows);
    expect(feed.others).toEqual([]);
    await annotate(
      `failover ${failoverMs} ms; duplicates: events ${events.duplicates}/${events.received}, changes ${changes.duplicates}/${changes.received}`,
    );
  });

  it('fails over when the leader is paused (SIGSTOP), and the leader woken afterwards neither reads again nor loses anything', { timeout: 120_000 }, async ({ annotate }) => {
    const source = await createTestDatabase();
    const platform = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    const env = cdcEnv({ DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const paused = await startChildServer(env);
    await configureSource(paused, source.url);
    await waitUntilLeading(paused);
    const follower = await startTestServer(env);
    await waitFor(async () => (await readerStatus(follower))?.leading === false, { message: 'the follower knows the source' });
    const feed = await subscribeOn(follower);
    await insertItems(pool, ids(1, 10));
    await waitUntilDelivered(pool, [feed.events, feed.changes]);

    // Frozen with its walsender open: what is written now reaches its socket, not its handler.
    paused.signal('SIGSTOP');
    const pausedAt = performance.now();
    await bumpItems(pool, ids(1, 10), 3);
    // The lock expires (CDC_LEADER_TTL_MS: 4 s; followers poll every 1 s); the follower ends the
    // frozen leader's walsender and reads from the slot's confirmed position.
    await waitUntilLeading(follower, 40_000);
    const failoverMs = Math.round(performance.now() - pausedAt);
    await waitUntilDelivered(pool, [feed.events, feed.changes]);

    const beforeWake = feed.events.length;
    paused.signal('SIGCONT');
    await waitFor(async () => (await readerStatus(paused))?.leading === false, { timeoutMs: 10_000, message: 'the woken leader steps down' });
    // Whatever arrives before a change written now was published by the woken leader (stale).
    await insertItems(pool, [16]);
    await waitFor(() => feed.events.some((event) => event.entity === 16), { message: 'the change written after the wake-up arrives' });
    const stale = feed.events.slice(beforeWake).filter((event) => event.entity !== 16).length;
    await bumpItems(pool, ids(1, 10), 2);
    await insertItems(pool, ids(11, 15));

    const rows = await waitUntilDelivered(pool, [feed.events, feed.changes]);
    const events = expectCompleteHistory(feed.events, rows);
    const changes = expectCompleteHistory(feed.changes, rows);
    expect(feed.others).toEqual([]);
    expect((await readerStatus(follower))?.leading).toBe(true);
    expect((await readerStatus(paused))?.leading).toBe(false);
    await annotate(
      `failover ${failoverMs} ms after SIGSTOP; ${stale} published by the woken leader; duplicates: events ${events.duplicates}/${events.received}, changes ${changes.duplicates}/${changes.received}`,
    );
  });

  it('ends resuming and live subscriptions with RESYNC_REQUIRED when the slot is dropped by hand, and streams again on a new slot', { timeout: 60_000 }, async () => {
    const source = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    const env = cdcEnv({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const server = await startTestServer(env);
    await configureSource(server, source.url);
    await waitUntilLeading(server);
    const { slotName } = await replicationNamesOf(pool);
    const live = await subscribeOn(server);
    await insertItems(pool, ids(1, 3));
    await bumpItems(pool, ids(1, 3));
    await waitUntilDelivered(pool, [live.events, live.changes]);
    const oldEvents = live.events.at(-1)!.cursor;
    const oldChanges = live.changes.at(-1)!.cursor;

    // The slot goes: its walsender is ended, and it is dropped before the reader reconnects. The
    // reader creates a new slot (and starts new epochs) before it streams from it.
    await dropSlotUntilRecreated(pool, slotName);

    const statsBefore = server.stats();
    const resuming = await subscribeItems(server, { eventsAfter: oldEvents, changesAfter: oldChanges });
    await waitFor(
      () => {
        if (resuming.others.length < 2) {
          const received = [...resuming.others, ...resuming.events, ...resuming.changes];
          throw new Error(`received ${JSON.stringify(received)}, socket closed ${JSON.stringify(resuming.closedWith)}, subscribers ${statsBefore.subscribers} → ${server.stats().subscribers}`);
        }
        return true;
      },
      { timeoutMs: 15_000, message: 'both resuming subscriptions end' },
    );
    expect(resyncedSubscriptions(resuming.others)).toEqual(['c', 'e']);

    // The next change: the live subscriber, which may have missed changes, is told to resync
    // instead of continuing silently.
    await bumpItems(pool, [1]);
    const isNew = (change: ItemChange) => change.entity === 1 && change.value === 2;
    await waitFor(() => live.others.length >= 2 || [...live.events, ...live.changes].some(isNew), {
      message: 'the live subscriber hears of the next change',
    });
    expect(resyncedSubscriptions(live.others)).toEqual(['c', 'e']);
    expect([...live.events, ...live.changes].filter(isNew)).toEqual([]);

    // Later changes flow again, to a subscriber that starts afresh.
    const fresh = await subscribeOn(server);
    await insertItems(pool, [4]);
    await bumpItems(pool, [4]);
    await waitFor(() => fresh.events.length === 2 && fresh.changes.length === 2, { message: 'the fresh subscriber receives the new changes' });
    for (const received of [fresh.events, fresh.changes]) {
      expect(received.map(({ entity, value }) => ({ entity, value }))).toEqual([
        { entity: 4, value: 0 },
        { entity: 4, value: 1 },
      ]);
    }
  });

  it('confirms the WAL of tables outside the publication, so the slot stops retaining it', { timeout: 60_000 }, async () => {
    const source = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    await pool.query('CREATE TABLE other (id serial PRIMARY KEY, pad text)');
    const env = cdcEnv({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    // A publication of the mapped table only, made beforehand: the reader uses it as it is.
    await pool.query(`CREATE PUBLICATION ${(await derivedNamesOf(pool)).publicationName} FOR TABLE items`);
    const server = await startTestServer(env);
    await configureSource(server, source.url);
    await waitUntilLeading(server);
    const { slotName } = await replicationNamesOf(pool);
    const start = (await slotRow(pool, slotName))!;

    for (let i = 0; i < 20; i += 1) await pool.query(`INSERT INTO other (pad) SELECT repeat('x', 1000) FROM generate_series(1, 100)`);
    const written = await currentWalLsn(pool);
    expect(await lsnDiff(pool, written, start.restart_lsn!)).toBeGreaterThan(1_000_000);
    // Nothing of it is sent, yet the reader confirms past it (keepalives of an idle stream)...
    await waitFor(async () => (await lsnDiff(pool, (await slotRow(pool, slotName))!.confirmed_flush_lsn!, written)) >= 0, {
      timeoutMs: 15_000,
      message: 'the slot confirms past the unpublished writes',
    });
    // ...and once Postgres logs a restart point after it, the slot releases that WAL.
    await pool.query('CHECKPOINT');
    await waitFor(async () => (await lsnDiff(pool, (await slotRow(pool, slotName))!.restart_lsn!, written)) >= 0, {
      timeoutMs: 20_000,
      message: 'the slot no longer retains the unpublished writes',
    });
  });

  it('confirms transactions of a published table that no mapping routes', { timeout: 60_000 }, async () => {
    const source = await createTestDatabase();
    const pool = openPool(source.url);
    await createItemsTable(pool);
    await pool.query('CREATE TABLE other (id serial PRIMARY KEY, pad text)');
    const env = cdcEnv({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const server = await startTestServer(env);
    await configureSource(server, source.url);
    await waitUntilLeading(server);
    const feed = await subscribeOn(server);

    for (let i = 0; i < 20; i += 1) await pool.query(`INSERT INTO other (pad) SELECT repeat('x', 1000) FROM generate_series(1, 100)`);
    const written = await currentWalLsn(pool);
    await waitFor(async () => (await lsnDiff(pool, (await slotRow(pool, (await replicationNamesOf(pool)).slotName))!.confirmed_flush_lsn!, written)) >= 0, {
      timeoutMs: 15_000,
      message: 'the slot confirms past the unmapped writes',
    });
    await insertItems(pool, [1]);
    const rows = await waitUntilDelivered(pool, [feed.events, feed.changes]);
    expectCompleteHistory(feed.events, rows);
  });

  it('reports in the admin status a lag while a change cannot be published, and streaming with lag 0 once writes are through', { timeout: 90_000 }, async ({ annotate }) => {
    const postgres = await startPrivatePostgres();
    const pool = openPool(postgres.url);
    await createItemsTable(pool);
    const keyPrefix = uniquePrefix();
    const server = await startTestServer(cdcEnv({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: keyPrefix }));
    await configureSource(server, postgres.url);
    await waitUntilLeading(server);
    await insertItems(pool, ids(1, 20));

    // A change that cannot be published holds the slot back (see the first test).
    const redis = redisClient(testRedisUrl());
    await redis.set(itemEventsLogKey(keyPrefix, 'p'), 'not a stream');
    await insertItems(pool, [100], 'p');
    const stuck = await waitForStatus(server, (status) => status.lagBytes !== null && status.lagBytes > 0 && status.lastError !== null, {
      timeoutMs: 20_000,
      message: 'the status shows the lag and the error',
    });
    expect(stuck.lastError).toContain('event log');

    await redis.del(itemEventsLogKey(keyPrefix, 'p'));
    await insertItems(pool, ids(21, 30));
    const written = await currentWalLsn(pool);
    const caughtUp = await waitForStatus(
      server,
      async (status) =>
        status.state === 'streaming' &&
        status.lagBytes === 0 &&
        status.lastAcknowledgedLsn !== null &&
        (await lsnDiff(pool, status.lastAcknowledgedLsn, written)) >= 0,
      { timeoutMs: 30_000, message: 'the status shows streaming with lag 0' },
    );
    expect(caughtUp).toMatchObject({ state: 'streaming', leading: true, lagBytes: 0 });
    expect(caughtUp.retainedWalBytes).toBeGreaterThanOrEqual(0);
    await annotate(`stuck: ${JSON.stringify(stuck)}; caught up: ${JSON.stringify(caughtUp)}`);
  });
});
