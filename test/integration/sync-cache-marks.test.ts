/**
 * The marks a change keeps in the document cache until Postgres has it, through the service on a
 * real Postgres and Redis (links cut by TCP proxies, a persistent Redis restarted):
 * - a change answered UNAVAILABLE in sync durability keeps its event (`pe`) in its entry, for the
 *   flush that marks it unpublished in Postgres. A restarted Redis starts a new epoch; the stale
 *   entry reloaded into it kept the change but dropped its event, so the change was saved with no
 *   event: its `sync.*` event never went out (nor webhooks), and `document` subscribers saw a gap.
 * - a flush whose `markFlushed` fails (the Redis link cut once Postgres committed, or its reply
 *   lost) leaves the entry's flushed mark behind Postgres's row. A change decided on that entry
 *   would be flushed as a compare-and-set on the old mark, refused, taken back and answered
 *   CONFLICT. It is not: in sync durability a write first flushes an entry whose mark lags
 *   (`decideAndWrite` → `flushPending`), whose compare-and-set finds the row holding exactly the
 *   entry's change and counts it flushed (`settleRefused`); FLUSHED only raises the mark. These
 *   cases passed before the fix of the first; without that flush-first step the first one gets
 *   CONFLICT (checked by hand).
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database, QueryOptions, Row } from '../../src/db/database.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createCachedDocumentService, type SyncDurability } from '../../src/pipeline/sync/cached-documents.ts';
import { FLUSHED } from '../../src/pipeline/sync/document-cache-scripts.ts';
import { documentTopic, type DocumentKey } from '../../src/pipeline/sync/documents.ts';
import { createRedisClient } from '../../src/redis-clients.ts';
import { createTestDatabase, openTestPool, startPrivateRedis, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

const key: DocumentKey = { scope: { app: 'a', env: 'e', tenant: undefined }, service: 's', id: 'd' };

/** `db` that runs `then` once the flush (the upsert into sync_documents) of `revision` has committed: the real statement, then the fault. */
function afterFlushOf(db: Database): { db: Database; arm(revision: number, then: () => void): void } {
  let armed: { revision: number; then: () => void } | undefined;
  const query: Database['query'] = async <R extends Row>(sql: string, params?: readonly unknown[], options?: QueryOptions) => {
    const result = await db.query<R>(sql, params, options);
    const held = armed;
    // Parameter 6 of writeDocument's upsert is the revision.
    if (held && sql.includes('INSERT INTO sync_documents') && sql.includes('RETURNING ceiling') && params?.[5] === held.revision) {
      armed = undefined;
      held.then();
    }
    return result;
  };
  const wrapped = new Proxy(db, { get: (target, prop, receiver) => (prop === 'query' ? query : (Reflect.get(target, prop, receiver) as unknown)) });
  const arm = (revision: number, then: () => void) => {
    armed = { revision, then };
  };
  return { db: wrapped, arm };
}

/** A migrated database, and instances of the cached document service sharing one cache on the Redis at `redisPort`. */
async function setUp(redisPort: number) {
  const database = await createTestDatabase({ migrated: true });
  const quiet = createLogger({ level: 'silent' });
  const admin = openTestPool(database.url);
  const prefix = uniquePrefix();

  /** An instance whose Postgres and Redis are each behind a TCP proxy the test can cut; its Redis connection is the server's own kind (fails fast, never re-sends). */
  const start = async (durability: SyncDurability) => {
    const postgresLink = await startTcpProxy(Number(new URL(database.url).port));
    const redisLink = await startTcpProxy(redisPort);
    const url = new URL(database.url);
    url.port = String(postgresLink.port);
    const raw = createPostgresDatabase({ url: url.toString(), logger: quiet });
    onTestFinished(() => raw.close());
    const hooked = afterFlushOf(raw);
    const redis = createRedisClient(`redis://127.0.0.1:${redisLink.port}`, 'tributary', quiet);
    onTestFinished(() => redis.disconnect());
    await waitFor(() => redis.status === 'ready', { message: 'the instance reaches Redis' });
    const published: { topic: string; revision: unknown; data: unknown }[] = [];
    const log = createMemoryLog({
      retention: { maxEvents: 1000, maxAgeMs: 3_600_000 },
      publish: (_stream, event) => published.push({ topic: event.topic, revision: event.payload['revision'], data: event.payload['data'] }),
    });
    onTestFinished(() => log.close());
    const logs = captureLogs();
    const service = createCachedDocumentService({
      db: hooked.db,
      redis,
      keyPrefix: prefix,
      router: createEventRouter({ log, logger: quiet }),
      logger: createLogger({ level: 'debug', destination: logs }),
      durability,
      ttlSeconds: 600,
      // Only the write path (and the waits) flush, and no sweep republishes.
      sweepIntervalMs: 3_600_000,
    });
    onTestFinished(() => service.close());
    /** The document's changes as its own stream got them (what `document` subscribers and the sync.* topics get). */
    const changes = () => published.filter((event) => event.topic === documentTopic('s', 'd')).map(({ revision, data }) => ({ revision, data }));
    return { service, redis, logs, changes, postgresLink, redisLink, afterFlushOf: (revision: number, then: () => void) => hooked.arm(revision, then) };
  };

  const stored = async () => (await admin.query<{ revision: number; data: unknown }>("SELECT revision, data FROM sync_documents WHERE service = 's' AND id = 'd'")).rows[0];
  const marked = async () => (await admin.query<{ revision: number }>('SELECT revision FROM sync_unpublished_events ORDER BY revision')).rows.map((row) => row.revision);
  return { start, stored, marked, prefix };
}

function cut(link: TcpProxy): void {
  link.refuse(true);
  link.dropAll();
}

/** A write's outcome: its revision and data, or its error's code and details. */
function settled(write: Promise<{ revision: number; data: unknown }>) {
  return write.then(
    ({ revision, data }) => ({ revision, data }),
    (error: { code?: unknown; details?: unknown }) => ({ code: error.code, details: error.details }),
  );
}

const change = (revision: number, v: number) => ({ revision, data: { v } });

describe('a change answered UNAVAILABLE in sync durability, its entry reloaded after Redis restarted', () => {
  it.each([
    ['its instance flushes it once the database is back', 'its wait' as const],
    ["another instance's next write flushes it first", 'the next write' as const],
  ])('keeps its event: %s, and it is published before the next change', { timeout: 60_000 }, async (_title, flushedBy) => {
    const redis = await startPrivateRedis({ persistent: true });
    const { start, stored, marked, prefix } = await setUp(redis.port);
    const A = await start('sync');
    const B = await start('sync');
    await A.service.create(key, { v: 1 });
    cut(A.postgresLink);
    expect(await settled(A.service.merge(key, { v: 2 }, 1))).toEqual({ code: ErrorCode.UNAVAILABLE, details: { saved: true, revision: 2 } });

    // Restarted with its data: a new epoch (the run id changed), the entry of the old one is stale.
    const epochKey = `${prefix}doc:epoch`;
    const probe = new Redis(redis.url);
    onTestFinished(() => probe.disconnect());
    const before = await probe.get(epochKey);
    await redis.stop();
    await redis.start();
    await waitFor(async () => B.redis.status === 'ready' && (await probe.get(epochKey).catch(() => before)) !== before, {
      timeoutMs: 20_000,
      message: 'a new epoch after the restart',
    });
    // B reloads the stale entry into the new epoch: the change Postgres lacks is kept, and readers
    // are shown what Postgres has.
    expect((await B.service.get(key))?.revision).toBe(1);

    if (flushedBy === 'its wait') {
      A.postgresLink.refuse(false);
      await waitFor(() => A.changes().length === 2, { timeoutMs: 20_000, message: "A's wait published revision 2" });
      expect(await settled(B.service.merge(key, { v: 3 }, 2))).toEqual(change(3, 3));
      expect(A.changes()).toEqual([change(1, 1), change(2, 2)]);
      expect(B.changes()).toEqual([change(3, 3)]);
    } else {
      // A's wait cannot reach its database: B's write flushes revision 2, publishes it, then its own.
      expect(await settled(B.service.merge(key, { v: 3 }, 2))).toEqual(change(3, 3));
      expect(A.changes()).toEqual([change(1, 1)]);
      expect(B.changes()).toEqual([change(2, 2), change(3, 3)]);
    }
    expect(await stored()).toEqual(change(3, 3));
    expect(await marked()).toEqual([]);
  });
});

describe('a flush whose markFlushed fails after the database committed', () => {
  it.each([
    ['sync', 'the Redis link cut before it is sent', { code: ErrorCode.UNAVAILABLE, details: { saved: true, revision: 2 } }],
    ['sync', 'its reply lost (it ran)', change(2, 2)],
    ['async', 'the Redis link cut before it is sent', change(2, 2)],
  ] as const)('%s durability, %s: the next writes from the revision the client was given succeed, on either instance', { timeout: 60_000 }, async (durability, fault, firstAnswer) => {
    const redisPort = Number(new URL(testRedisUrl()).port);
    const { start, stored, marked } = await setUp(redisPort);
    const A = await start(durability);
    const B = await start(durability);
    await A.service.create(key, { v: 1 });
    await waitFor(async () => (await stored())?.revision === 1, { message: 'the creation flushed' });

    const faulted = deferred();
    if (fault === 'its reply lost (it ran)') {
      const sha = createHash('sha1').update(FLUSHED).digest('hex');
      void A.redisLink.cutReplyTo(new RegExp(sha), { connectionName: 'tributary' }).then(() => faulted.resolve());
    } else {
      A.afterFlushOf(2, () => {
        cut(A.redisLink);
        faulted.resolve();
      });
    }
    expect(await settled(A.service.merge(key, { v: 2 }, 1))).toEqual(firstAnswer);
    await faulted.promise;
    expect(await stored()).toEqual(change(2, 2));
    if (durability === 'async') {
      // The flush fails once the client gives the command up (its one retry after a reconnect
      // attempt): seconds on a loaded machine, as A's reconnect below.
      await waitFor(() => A.logs.lines.some((line) => line.msg === 'document flush failed; the sweep retries it'), { timeoutMs: 20_000, message: "A's flush failed" });
    }
    A.redisLink.refuse(false);
    await waitFor(() => A.redis.status === 'ready', { timeoutMs: 20_000, message: 'A reaches Redis again' });

    expect(await settled(A.service.merge(key, { v: 3 }, 2))).toEqual(change(3, 3));
    expect(await settled(B.service.merge(key, { v: 4 }, 3))).toEqual(change(4, 4));
    await waitFor(async () => (await stored())?.revision === 4, { message: 'revision 4 flushed' });
    expect(await stored()).toEqual(change(4, 4));
    expect(A.changes()).toEqual([change(1, 1), change(2, 2), change(3, 3)]);
    expect(B.changes()).toEqual([change(4, 4)]);
    expect(await marked()).toEqual([]);
  });
});
