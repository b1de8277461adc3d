/**
 * Two instances of the cached document service on one Redis and one Postgres, and Redis losing its
 * data while instance A's change (revision 2) is on its way to Postgres: instance B then decides
 * its own change from Postgres's row (revision 1), of the same revision 2. In sync durability both
 * were answered success, Postgres kept one and the cache the other (the flush of the second wrote
 * nothing and counted as flushed). Now a flush is a compare-and-set on the revision Postgres had:
 * the second is taken back and its writer gets CONFLICT. In async durability, B resumes above the
 * ceiling A's lease was granted, so no revision goes to two contents.
 */
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createCachedDocumentService, type SyncDurability } from '../../src/pipeline/sync/cached-documents.ts';
import { documentTopic, type DocumentKey } from '../../src/pipeline/sync/documents.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { deferred, waitFor, type Deferred } from '../helpers/wait-for.ts';

const key: DocumentKey = { scope: { app: 'a', env: 'e', tenant: undefined }, service: 's', id: 'd' };

/** One held statement: `arrived` once it is sent, `release` lets it go, `done` once it has run. */
interface Hold {
  readonly arrived: Deferred<void>;
  readonly release: Deferred<void>;
  readonly done: Deferred<void>;
}

/**
 * `db` whose next flush (the upsert into sync_documents) of revision `revision` waits, once `hold`
 * is called: the real statement, sent late.
 */
function holdingFlushes(db: Database): { db: Database; hold(revision: number): Hold } {
  let armed: { revision: number; hold: Hold } | undefined;
  const query: Database['query'] = async (sql, params, options) => {
    const held = armed;
    // Parameter 6 of writeDocument's upsert is the revision (the statement also marks the change's event unpublished).
    if (held && sql.includes('INSERT INTO sync_documents') && sql.includes('RETURNING ceiling') && params?.[5] === held.revision) {
      armed = undefined;
      held.hold.arrived.resolve();
      await held.hold.release.promise;
      try {
        return await db.query(sql, params, options);
      } finally {
        held.hold.done.resolve();
      }
    }
    return db.query(sql, params, options);
  };
  const wrapped = new Proxy(db, { get: (target, prop, receiver) => (prop === 'query' ? query : (Reflect.get(target, prop, receiver) as unknown)) });
  return {
    db: wrapped,
    hold(revision) {
      const hold = { arrived: deferred(), release: deferred(), done: deferred() };
      armed = { revision, hold };
      return hold;
    },
  };
}

async function setUp(durability: SyncDurability) {
  const database = await createTestDatabase({ migrated: true });
  const quiet = createLogger({ level: 'silent' });
  const admin = openTestPool(database.url);
  const prefix = uniquePrefix();

  /** An instance; with `cut`, its Postgres is behind a TCP proxy the test can take away (`postgresLink`). */
  const start = async (options: { cut?: boolean } = {}) => {
    const postgresLink = options.cut ? await startTcpProxy(Number(new URL(database.url).port)) : undefined;
    const url = new URL(database.url);
    if (postgresLink) url.port = String(postgresLink.port);
    const raw = createPostgresDatabase({ url: url.toString(), logger: quiet });
    onTestFinished(() => raw.close());
    const flushes = holdingFlushes(raw);
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    // Ready first: the service then checks the cache epoch at once, before any write.
    if (redis.status !== 'ready') await once(redis, 'ready');
    const published: { revision: unknown; data: unknown }[] = [];
    const log = createMemoryLog({
      retention: { maxEvents: 1000, maxAgeMs: 3_600_000 },
      publish: (_stream, event) => {
        if (event.topic === documentTopic('s', 'd')) published.push({ revision: event.payload['revision'], data: event.payload['data'] });
      },
    });
    onTestFinished(() => log.close());
    const service = createCachedDocumentService({
      db: flushes.db,
      redis,
      keyPrefix: prefix,
      router: createEventRouter({ log, logger: quiet }),
      logger: quiet,
      durability,
      ttlSeconds: 600,
      // Only the write path flushes.
      sweepIntervalMs: 3_600_000,
    });
    onTestFinished(() => service.close());
    return { service, hold: (revision: number) => flushes.hold(revision), published, postgresLink };
  };

  /** What a Redis restart without persistence does to this cluster's keys. */
  const loseRedisData = async () => {
    const redis = new Redis(testRedisUrl());
    try {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      await redis.quit();
    }
  };

  const stored = async () => (await admin.query<{ revision: number; data: unknown }>("SELECT revision, data FROM sync_documents WHERE service = 's' AND id = 'd'")).rows[0];
  return { start, loseRedisData, stored };
}

/** A write's outcome: its revision and data, or its error's code and details. */
function settled(write: Promise<{ revision: number; data: unknown }>) {
  return write.then(
    ({ revision, data }) => ({ revision, data }),
    (error: { code?: unknown; details?: unknown }) => ({ code: error.code, details: error.details }),
  );
}

describe('two instances writing one revision after Redis lost its data', () => {
  it.each([
    ['the first change to reach the database wins: the other writer gets CONFLICT', 'A first' as const],
    ['the first change to reach the database wins even when it was decided last', 'B first' as const],
  ])('sync durability: %s', async (_title, order) => {
    const { start, loseRedisData, stored } = await setUp('sync');
    const A = await start();
    const B = await start();
    await A.service.create(key, { v: 1 });

    const heldA = A.hold(2);
    const writeA = settled(A.service.merge(key, { v: 'A' }, 1));
    await heldA.arrived.promise;
    await loseRedisData();
    const heldB = B.hold(2);
    // B reads revision 1 from the database and decides revision 2 from it.
    const writeB = settled(B.service.merge(key, { v: 'B' }, 1));
    await heldB.arrived.promise;

    const [first, second] = order === 'A first' ? [heldA, heldB] : [heldB, heldA];
    first.release.resolve();
    await first.done.promise;
    second.release.resolve();
    const [a, b] = await Promise.all([writeA, writeB]);

    const winner = order === 'A first' ? { revision: 2, data: { v: 'A' } } : { revision: 2, data: { v: 'B' } };
    const loser = { code: ErrorCode.CONFLICT, details: { currentRevision: 2 } };
    expect(order === 'A first' ? [a, b] : [b, a]).toEqual([winner, loser]);
    // One content for revision 2, wherever it is read, and only its event.
    expect(await stored()).toEqual(winner);
    for (const instance of [A, B]) {
      const read = await instance.service.get(key);
      expect({ revision: read?.revision, data: read?.data }).toEqual(winner);
    }
    expect([...A.published, ...B.published]).toEqual([{ revision: 1, data: { v: 1 } }, winner]);

    // The loser retries from what the database has; nothing of the winner's is lost.
    const retried = order === 'A first' ? B : A;
    expect(await settled(retried.service.merge(key, { w: 3 }, 2))).toEqual({ revision: 3, data: { ...winner.data, w: 3 } });
    expect(await stored()).toEqual({ revision: 3, data: { ...winner.data, w: 3 } });
  });

  it('sync durability: a change answered UNAVAILABLE that another reached the database ahead of is dropped unpublished; the next write goes on from the database', async () => {
    const { start, loseRedisData, stored } = await setUp('sync');
    const A = await start();
    const B = await start({ cut: true });
    await A.service.create(key, { v: 1 });

    const heldA = A.hold(2);
    const writeA = settled(A.service.merge(key, { v: 'A' }, 1));
    await heldA.arrived.promise;
    await loseRedisData();
    const heldB = B.hold(2);
    const writeB = settled(B.service.merge(key, { v: 'B' }, 1));
    await heldB.arrived.promise;
    // B's database goes away under its flush: its change stays in the cache, promised.
    B.postgresLink!.refuse(true);
    B.postgresLink!.dropAll();
    heldB.release.resolve();
    expect(await writeB).toEqual({ code: ErrorCode.UNAVAILABLE, details: { saved: true, revision: 2 } });

    heldA.release.resolve();
    expect(await writeA).toEqual({ revision: 2, data: { v: 'A' } });
    B.postgresLink!.refuse(false);

    // B's pending change can no longer be written: its next write (or its own retry, whichever
    // comes first) takes it back, and this write goes on from what the database has.
    expect(await settled(B.service.merge(key, { w: 3 }, undefined))).toEqual({ revision: 3, data: { v: 'A', w: 3 } });
    expect(await stored()).toEqual({ revision: 3, data: { v: 'A', w: 3 } });
    await B.service.close();
    expect([...A.published, ...B.published].sort((x, y) => Number(x.revision) - Number(y.revision))).toEqual([
      { revision: 1, data: { v: 1 } },
      { revision: 2, data: { v: 'A' } },
      { revision: 3, data: { v: 'A', w: 3 } },
    ]);
  });

  it('async durability: the other instance resumes above the ceiling granted to the lost cache, so no revision is given to two contents', async () => {
    const { start, loseRedisData, stored } = await setUp('async');
    const A = await start();
    const B = await start();
    await A.service.create(key, { v: 1 });
    await waitFor(async () => (await stored())?.revision === 1, { message: 'the creation flushed' });

    const heldA = A.hold(2);
    // Answered once Redis has it; its flush is held on its way to the database.
    expect(await settled(A.service.merge(key, { v: 'A' }, 1))).toEqual({ revision: 2, data: { v: 'A' } });
    await heldA.arrived.promise;
    await loseRedisData();

    // The database's row is at revision 1 with a ceiling of 65 granted to A's (lost) cache lease.
    expect(await settled(B.service.merge(key, { v: 'B' }, 1))).toEqual({ code: ErrorCode.CONFLICT, details: { currentRevision: 66 } });
    expect(await settled(B.service.merge(key, { v: 'B' }, undefined))).toEqual({ revision: 67, data: { v: 'B' } });
    await waitFor(async () => (await stored())?.revision === 67, { message: "B's change flushed" });

    heldA.release.resolve();
    await heldA.done.promise;
    // A's late flush moves nothing back: its acknowledged change is lost, as async durability allows
    // for changes not yet in the database when Redis loses its data.
    expect(await stored()).toEqual({ revision: 67, data: { v: 'B' } });
    const read = await A.service.get(key);
    expect({ revision: read?.revision, data: read?.data }).toEqual({ revision: 67, data: { v: 'B' } });
  });
});
