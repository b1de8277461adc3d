/**
 * The end of a write in sync durability (`document-commits.ts`), through the service, on a real
 * Postgres and Redis: an instance's database or Redis cut by a TCP proxy, a failover that lands on
 * a read-only node, a second instance on the same cache, a graceful shutdown, and writers held up
 * behind one that does not finish. Events are those the real router appends to an in-memory log.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createCachedDocumentService } from '../../src/pipeline/sync/cached-documents.ts';
import { documentTopic, type DocumentKey } from '../../src/pipeline/sync/documents.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { captureLogs, type LogLine } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const key = (id: string): DocumentKey => ({ scope: { app: 'a', env: 'e', tenant: undefined }, service: 's', id });

const TAKEN_BACK = 'the database refused a change answered UNAVAILABLE (not an outage): it is taken back from the cache; its event is not published';
const GONE = 'a change answered UNAVAILABLE was taken back by a later write of the document (the database refused it); its event is not published';

/** Postgres refuses a document whose data has a key "refuse" (SQLSTATE 23514, check_violation: its content). */
const REFUSE_MARKED = `
  CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.data ? 'refuse' THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON sync_documents FOR EACH ROW EXECUTE FUNCTION refuse_marked();`;

interface Published {
  readonly topic: string;
  readonly revision: unknown;
  readonly data: unknown;
}

/** A migrated database, and instances of the cached document service in sync durability sharing one cache. */
async function setUp() {
  const database = await createTestDatabase({ migrated: true });
  const quiet = createLogger({ level: 'silent' });
  const admin = openTestPool(database.url);
  const prefix = uniquePrefix();

  /** An instance; `cut` proxies its Postgres and Redis so that the test can take them away. */
  const start = async (options: { cut?: boolean } = {}) => {
    const postgresLink = options.cut ? await startTcpProxy(Number(new URL(database.url).port)) : undefined;
    const redisLink = options.cut ? await startTcpProxy(Number(new URL(testRedisUrl()).port)) : undefined;
    const db = createPostgresDatabase({ url: through(database.url, postgresLink), logger: quiet });
    onTestFinished(() => db.close());
    const redis = new Redis(through(testRedisUrl(), redisLink));
    // The test cuts the link: the service sees the failed commands.
    redis.on('error', () => undefined);
    onTestFinished(async () => void (await redis.quit()));
    const published: Published[] = [];
    const log = createMemoryLog({
      retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 },
      publish: (_stream, event) => published.push({ topic: event.topic, revision: event.payload['revision'], data: event.payload['data'] }),
    });
    onTestFinished(() => log.close());
    const logs = captureLogs();
    const service = createCachedDocumentService({
      db,
      redis,
      keyPrefix: prefix,
      router: createEventRouter({ log, logger: quiet }),
      logger: createLogger({ level: 'debug', destination: logs }),
      durability: 'sync',
      ttlSeconds: 600,
      // Only the write path (and the waits) flush.
      sweepIntervalMs: 3_600_000,
    });
    onTestFinished(() => service.close());
    /** The revisions (and data) published on the document's own stream. */
    const changes = (id: string) => published.filter((event) => event.topic === documentTopic('s', id)).map(({ revision, data }) => ({ revision, data }));
    return { service, logs, changes, postgresLink: postgresLink!, redisLink: redisLink! };
  };

  const stored = async (id: string) =>
    (await admin.query<{ revision: number; data: unknown }>("SELECT revision, data FROM sync_documents WHERE service = 's' AND id = $1", [id])).rows[0];
  return { database, admin, start, stored };
}

function through(url: string, link: TcpProxy | undefined): string {
  if (!link) return url;
  const proxied = new URL(url);
  proxied.port = String(link.port);
  return proxied.toString();
}

function cut(link: TcpProxy): void {
  link.refuse(true);
  link.dropAll();
}

const logged = (lines: readonly LogLine[], msg: string) => lines.filter((line) => line.msg === msg);

describe('a change answered UNAVAILABLE in sync durability', () => {
  it('is kept while a failover leaves the database read-only, then written and published; a write meanwhile is answered UNAVAILABLE', async () => {
    const { database, admin, start, stored } = await setUp();
    const A = await start({ cut: true });
    await A.service.create(key('d'), { v: 1 });

    cut(A.postgresLink);
    await expect(A.service.merge(key('d'), { v: 2 }, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 2 } });
    // The database comes back on a node that takes no writes (a standby, a demoted primary).
    const name = new URL(database.url).pathname.slice(1);
    await admin.query(`ALTER DATABASE "${name}" SET default_transaction_read_only = on`);
    A.postgresLink.refuse(false);

    // Not a refusal of the change: a new one waits like the first, answered UNAVAILABLE.
    await expect(A.service.create(key('e'), { x: 1 })).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 1 } });
    await waitFor(() => A.logs.lines.some((line) => line['entryKey'] !== undefined && /read-only transaction/.test(line.err?.message ?? '')), {
      message: 'the waiting change was tried against the read-only database',
    });

    await admin.query(`ALTER DATABASE "${name}" RESET default_transaction_read_only`);
    // The pool's sessions were opened read-only.
    A.postgresLink.dropAll();
    await waitFor(() => A.changes('d').length === 2 && A.changes('e').length === 1, { timeoutMs: 20_000, message: 'both changes published' });
    expect(A.changes('d')).toEqual([
      { revision: 1, data: { v: 1 } },
      { revision: 2, data: { v: 2 } },
    ]);
    expect(A.changes('e')).toEqual([{ revision: 1, data: { x: 1 } }]);
    expect(await stored('d')).toEqual({ revision: 2, data: { v: 2 } });
    expect(await stored('e')).toEqual({ revision: 1, data: { x: 1 } });
    expect(A.logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });

  it.each([
    ['taken back by the next write on another instance, which writes revision 2 itself', { refused: true, laterChanges: 1 }],
    ['taken back by the next write on another instance, the document moving past it before its instance looks', { refused: true, laterChanges: 2 }],
    ['written by the next write on another instance, the document moving past it before its instance looks', { refused: false, laterChanges: 1 }],
  ])('is published by its instance only if the database has it: %s', async (_case, { refused, laterChanges }) => {
    const { admin, start, stored } = await setUp();
    await admin.query(REFUSE_MARKED);
    const A = await start({ cut: true });
    const B = await start();
    await A.service.create(key('d'), { v: 1 });

    cut(A.postgresLink);
    const patch = refused ? { refuse: true } : { v: 2 };
    await expect(A.service.merge(key('d'), patch, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 2 } });
    // A sees nothing of what B does until it is done.
    cut(A.redisLink);
    for (let n = 0; n < laterChanges; n += 1) await B.service.merge(key('d'), { later: n }, undefined);
    A.redisLink.refuse(false);
    A.postgresLink.refuse(false);

    const last = 2 + laterChanges - (refused ? 1 : 0);
    if (refused) {
      await waitFor(() => logged(A.logs.lines, GONE).length > 0 || A.changes('d').length > 1, { timeoutMs: 20_000, message: "A's wait ended" });
      expect(A.changes('d')).toEqual([{ revision: 1, data: { v: 1 } }]);
      expect(logged(A.logs.lines, GONE)).toMatchObject([{ level: 40, revision: 2 }]);
      expect(logged(B.logs.lines, TAKEN_BACK)).toMatchObject([{ level: 50, revision: 2 }]);
      expect(B.changes('d').map(({ revision }) => revision)).toEqual(Array.from({ length: laterChanges }, (_unused, index) => 2 + index));
    } else {
      // B's write saved A's change in the database with its event marked unpublished, and B's
      // publish takes it first: revision order. A's wait then finds it published and ends.
      expect(B.changes('d')).toEqual([
        { revision: 2, data: { v: 2 } },
        { revision: 3, data: { v: 2, later: 0 } },
      ]);
      await waitFor(() => A.logs.lines.some((line) => line.msg === 'document event published already by another write or the sweep' && line['revision'] === 2), {
        timeoutMs: 20_000,
        message: "A's wait ended",
      });
      expect(A.changes('d')).toEqual([{ revision: 1, data: { v: 1 } }]);
    }
    expect(await stored('d')).toMatchObject({ revision: last });
  });

  it("ends its wait once another instance's write took it back and failed, so its instance's next write publishes only its own change", async () => {
    const { admin, start, stored } = await setUp();
    await admin.query(REFUSE_MARKED);
    const A = await start({ cut: true });
    const B = await start();
    await A.service.create(key('d'), { v: 1 });

    cut(A.postgresLink);
    await expect(A.service.merge(key('d'), { refuse: true }, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 2 } });
    // B takes A's change back, then finds the document at revision 1.
    await expect(B.service.merge(key('d'), { v: 2 }, 2)).rejects.toMatchObject({ code: ErrorCode.CONFLICT, details: { currentRevision: 1 } });
    A.postgresLink.refuse(false);

    await waitFor(() => logged(A.logs.lines, GONE).length > 0, { timeoutMs: 20_000, message: "A's wait ended" });
    expect(await A.service.merge(key('d'), { v: 3 }, undefined)).toMatchObject({ revision: 2, data: { v: 3 } });
    expect(A.changes('d')).toEqual([
      { revision: 1, data: { v: 1 } },
      { revision: 2, data: { v: 3 } },
    ]);
    expect(await stored('d')).toEqual({ revision: 2, data: { v: 3 } });
  });

  it('is published at a graceful shutdown that finds the database back', async () => {
    const { start, stored } = await setUp();
    const A = await start({ cut: true });
    await A.service.create(key('d'), { v: 1 });
    cut(A.postgresLink);
    await expect(A.service.merge(key('d'), { v: 2 }, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { revision: 2 } });

    // Back while the change's wait pauses between two tries; the shutdown does not wait for it.
    A.postgresLink.refuse(false);
    await A.service.close();
    expect(await stored('d')).toEqual({ revision: 2, data: { v: 2 } });
    expect(A.changes('d')).toEqual([
      { revision: 1, data: { v: 1 } },
      { revision: 2, data: { v: 2 } },
    ]);
  });
});

describe("a document's writers in one instance", () => {
  it('held up behind a write that does not finish, are answered UNAVAILABLE once the lock wait is up; the queue goes on after', async () => {
    const { admin, start, stored } = await setUp();
    const A = await start();
    await A.service.create(key('d'), { v: 1 });
    // The row locked: the next write's flush waits for it, holding the document's turn.
    const blocker = await admin.connect();
    onTestFinished(() => blocker.release());
    await blocker.query('BEGIN');
    await blocker.query("SELECT 1 FROM sync_documents WHERE service = 's' AND id = 'd' FOR UPDATE");
    const first = A.service.merge(key('d'), { v: 2 }, undefined);
    await waitFor(async () => (await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rowCount === 1, {
      message: "the first write's flush waits for the row",
    });

    await expect(A.service.merge(key('d'), { v: 3 }, undefined)).rejects.toMatchObject({
      code: ErrorCode.UNAVAILABLE,
      message: 'The document is being written by many writers at once; retry shortly',
    });

    await blocker.query('ROLLBACK');
    expect(await first).toMatchObject({ revision: 2, data: { v: 2 } });
    // The place given up holds nothing up.
    expect(await A.service.merge(key('d'), { v: 4 }, undefined)).toMatchObject({ revision: 3, data: { v: 4 } });
    expect(await stored('d')).toEqual({ revision: 3, data: { v: 4 } });
  });
});
