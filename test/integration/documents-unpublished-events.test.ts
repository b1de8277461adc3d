/**
 * A document change saved (and acknowledged) whose event was not published — the event log
 * refused it, or the instance stopped between the save and the publish — still reaches the
 * `sync.*` topic (`unpublished-events.ts`): published again by the sweep after its grace period,
 * with its own id, exactly once, or first by the document's next change, in revision order. In
 * every way documents are stored: the platform database alone, and the Redis cache in front of it
 * in sync and async durability. Real Postgres and Redis; events are those the real router appends
 * to an in-memory log, whose appends the test can refuse or hold.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { rm } from 'node:fs/promises';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createCachedDocumentService } from '../../src/pipeline/sync/cached-documents.ts';
import { documentTopic, type DocumentKey, type DocumentService } from '../../src/pipeline/sync/documents.ts';
import { createPostgresDocumentService } from '../../src/pipeline/sync/postgres-documents.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { captureLogs, type LogLine } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

type Mode = 'postgres' | 'embedded' | 'sync' | 'async';
const MODES: readonly Mode[] = ['postgres', 'embedded', 'sync', 'async'];

const key = (id: string): DocumentKey => ({ scope: { app: 'a', env: 'e', tenant: undefined }, service: 's', id });

const REPUBLISHED = /^document event published again/;

interface Placed {
  readonly id: string;
  readonly topic: string;
  readonly revision: unknown;
}

/** What the log's appends do: place the event, refuse it, or never answer (an instance stopped mid-publish). */
type Behaviour = 'place' | 'refuse' | 'hold';

/** The embedded database, migrated: one for every instance (one process owns its folder). */
async function embeddedDatabase(): Promise<Database> {
  const dataDir = await pgliteDataDir();
  onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
  const db = await createEmbeddedDatabase({ dataDir });
  onTestFinished(() => db.close());
  await migrate(db, { logger: createLogger({ level: 'silent' }) });
  return db;
}

/** A migrated database, the shared Redis, and instances of the document service sharing both and one log. */
async function setUp(mode: Mode) {
  const embedded = mode === 'embedded' ? await embeddedDatabase() : undefined;
  const database = embedded ? undefined : await createTestDatabase({ migrated: true });
  const pool = embedded ? undefined : openTestPool(database!.url);
  const marks = async (id: string): Promise<number | undefined> => {
    const sql = "SELECT count(*)::int AS n FROM sync_unpublished_events WHERE service = 's' AND id = $1";
    const { rows } = embedded ? await embedded.query<{ n: number }>(sql, [id]) : await pool!.query<{ n: number }>(sql, [id]);
    return rows[0]?.n;
  };
  const prefix = uniquePrefix();
  const placed: Placed[] = [];
  const log = createMemoryLog({
    retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 },
    publish: (_stream, event) => placed.push({ id: event.id, topic: event.topic, revision: event.payload['revision'] }),
  });
  onTestFinished(() => log.close());

  /**
   * An instance, its log's appends as `behaviour.current` says; `graceMs`: the grace period of its
   * changes' events, `sweepMs`: how often it sweeps.
   */
  const start = (graceMs: number, sweepMs = 50) => {
    const behaviour: { current: Behaviour } = { current: 'place' };
    /** Events this instance tried to append and could not. */
    const failed: UnplacedEvent[] = [];
    const gate: EventLog = {
      ...log,
      append: (stream, event) => {
        if (behaviour.current === 'place') return log.append(stream, event);
        failed.push(event);
        return behaviour.current === 'refuse' ? Promise.reject(new Error('the log refuses the event')) : new Promise(() => undefined);
      },
    };
    const logs = captureLogs();
    const logger = createLogger({ level: 'info', destination: logs });
    const quiet = createLogger({ level: 'silent' });
    let db = embedded;
    if (!db) {
      const own = createPostgresDatabase({ url: database!.url, logger: quiet });
      onTestFinished(() => own.close());
      db = own;
    }
    const router = createEventRouter({ log: gate, logger: quiet });
    const republish = { republishGraceMs: graceMs, republishIntervalMs: sweepMs };
    let service: DocumentService;
    if (mode === 'postgres' || mode === 'embedded') {
      service = createPostgresDocumentService({ db, router, logger, ...republish });
    } else {
      const redis = new Redis(testRedisUrl());
      onTestFinished(async () => void (await redis.quit()));
      service = createCachedDocumentService({ db, redis, keyPrefix: prefix, router, logger, durability: mode, ttlSeconds: 600, ...republish });
    }
    onTestFinished(() => service.close());
    return { service, behaviour, failed, logs };
  };

  /** The revisions placed on `sync.s.updated` (the service's topic), in order. */
  const updated = () => placed.filter((event) => event.topic === 'sync.s.updated');
  /** The revisions placed on the document's own stream, in order. */
  const ownStream = (id: string) => placed.filter((event) => event.topic === documentTopic('s', id)).map((event) => event.revision);

  /** Whether no event of the document is marked unpublished any more (Postgres, or Redis in async durability). */
  const unmarked = async (id: string): Promise<boolean> => {
    if (mode !== 'async') {
      return (await marks(id)) === 0;
    }
    const redis = new Redis(testRedisUrl());
    try {
      const marked = await redis.keys(`${prefix}doc:*${id}:unpublished`);
      return marked.length === 0 && (await redis.zcard(`${prefix}doc:unpublished`)) === 0;
    } finally {
      await redis.quit();
    }
  };
  return { start, updated, ownStream, unmarked, placed };
}

const republishedLines = (lines: readonly LogLine[]) => lines.filter((line) => REPUBLISHED.test(line.msg));

describe.each(MODES)('a document change whose event was not published (%s)', (mode) => {
  it('is published by the sweep once its grace period is over, with the id it was to have, exactly once', async () => {
    const { start, updated, ownStream, unmarked } = await setUp(mode);
    const A = start(300);
    await A.service.create(key('d'), { v: 1 });

    A.behaviour.current = 'refuse';
    await expect(A.service.merge(key('d'), { v: 2 }, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 2 } });
    const lost = A.failed.find((event) => event.topic === 'sync.s.updated');
    expect(lost?.payload['revision']).toBe(2);
    A.behaviour.current = 'place';

    await waitFor(() => updated().some((event) => event.revision === 2), { timeoutMs: 10_000, message: 'revision 2 was published again' });
    await waitFor(() => unmarked('d'), { message: 'its mark was removed' });
    expect(updated()).toEqual([{ id: lost?.id, topic: 'sync.s.updated', revision: 2 }]);
    expect(ownStream('d')).toEqual([1, 2]);
    expect(republishedLines(A.logs.lines).map((line) => [line['revision'], line['eventId'], line.level])).toEqual([[2, lost?.id, 40]]);
  });

  it('is published before the next change of the document, in revision order, and not again by the sweep', async () => {
    const { start, updated, ownStream, unmarked } = await setUp(mode);
    // A grace period no test reaches: only the next change can publish it.
    const A = start(3_600_000);
    await A.service.create(key('d'), { v: 1 });

    A.behaviour.current = 'refuse';
    await expect(A.service.merge(key('d'), { v: 2 }, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 2 } });
    A.behaviour.current = 'place';
    expect(updated()).toEqual([]);

    expect((await A.service.merge(key('d'), { v: 3 }, undefined)).revision).toBe(3);
    expect(updated().map((event) => event.revision)).toEqual([2, 3]);
    expect(updated()[0]?.id).toBe(A.failed.find((event) => event.topic === 'sync.s.updated')?.id);
    expect(ownStream('d')).toEqual([1, 2, 3]);
    expect(await unmarked('d')).toBe(true);
  });

  it('is published by another instance when its own stopped between the save and the publish, then the next change after it', async () => {
    const { start, updated, ownStream, unmarked } = await setUp(mode);
    // A never sweeps (it is as good as dead once it holds its publish).
    const A = start(300, 3_600_000);
    const B = start(300);
    await A.service.create(key('d'), { v: 1 });

    // A saves revision 2 and never gets its event into the log (as if it died there).
    A.behaviour.current = 'hold';
    void A.service.merge(key('d'), { v: 2 }, undefined);
    const held = await waitFor(() => A.failed.find((event) => event.topic === 'sync.s.updated'), { message: 'A tried to publish revision 2' });

    await waitFor(() => updated().some((event) => event.revision === 2), { timeoutMs: 15_000, message: 'B published revision 2 again' });
    await waitFor(() => unmarked('d'), { message: 'its mark was removed' });
    expect(await B.service.merge(key('d'), { v: 3 }, undefined)).toMatchObject({ revision: 3, data: { v: 3 } });
    expect(updated().map((event) => [event.id === held?.id, event.revision])).toEqual([
      [true, 2],
      [false, 3],
    ]);
    expect(ownStream('d')).toEqual([1, 2, 3]);
    expect(republishedLines(B.logs.lines).map((line) => line['revision'])).toEqual([2]);
  });
});
