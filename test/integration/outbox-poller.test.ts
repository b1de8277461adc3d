/**
 * The outbox poller against a real Postgres, with the real router and in-memory log: the
 * same-transaction guarantee, several pollers on one outbox (nothing lost or doubled, per-entity
 * order held), poison rows, a crash between routing and marking, tenants, retention and status.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueueOutboxEvent, type OutboxEventInput } from '@tributary/client/outbox';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { outboxEventId } from '../../src/pipeline/events/outbox-event.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPoller, type OutboxPoller, type OutboxPollerOptions } from '../../src/pipeline/outbox/outbox-poller.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { deleteProcessed, outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createEventRouter, type EventRouter } from '../../src/pipeline/router/event-router.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createTestDatabase, startPrivatePostgres, openTestPool } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const scope = { app: 'shop', env: 'prod' };
const OUTBOX_ID = 'outbox-test';
/** The event ids of rows `rowIds` of `pool`'s outbox: from each row's id and created_at, in epoch ms (read here, not by the poller's SQL). */
async function eventIdsOf(pool: pg.Pool, rowIds: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ id: string; ms: string }>(
    'SELECT id::text AS id, floor(extract(epoch FROM created_at) * 1000)::bigint::text AS ms FROM event_outbox WHERE id = ANY($1::bigint[])',
    [rowIds],
  );
  const created = new Map(rows.map((row) => [row.id, row.ms]));
  return rowIds.map((id) => outboxEventId(OUTBOX_ID, id, created.get(id) ?? null));
}

function openPool(url: string, applicationName = 'outbox-test', max = 4): pg.Pool {
  // A test terminates backends under it.
  return openTestPool(url, { max, application_name: applicationName });
}

/** An outbox table in a fresh test database, or in the database at `url` (a private cluster). */
async function setUp(url?: string) {
  const db = url === undefined ? await createTestDatabase() : { url };
  const admin = openPool(db.url, 'outbox-admin');
  await admin.query(outboxTableDdl(outboxTable('event_outbox')));
  await admin.query('CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL)');
  const appended: RealtimeEvent[] = [];
  const log = createMemoryLog({
    retention: { maxEvents: 100_000, maxAgeMs: 3_600_000 },
    publish: (_stream, event) => appended.push(event),
  });
  onTestFinished(() => log.close());
  const router = createEventRouter({ log, logger });
  const counted = { routed: 0, dead: [] as string[] };
  const poller = (pool: pg.Pool, options: Partial<OutboxPollerOptions> = {}): OutboxPoller => {
    const created = createOutboxPoller({
      pool,
      outboxId: OUTBOX_ID,
      scope,
      router,
      logger,
      metrics: { routed: (count) => (counted.routed += count), dead: (reason) => counted.dead.push(reason) },
      ...options,
    });
    onTestFinished(() => created.stop());
    return created;
  };
  const enqueue = (event: Partial<OutboxEventInput> = {}) =>
    enqueueOutboxEvent(admin, { topic: 'orders', type: 'order.created', payload: {}, ...event });
  const eventIds = (rowIds: readonly string[]) => eventIdsOf(admin, rowIds);
  return { db, admin, log, router, appended, counted, poller, enqueue, eventIds };
}

/** Hands `observe` the rows each claim (SELECT … FOR UPDATE) on the pool's connections answered: the real statements, watched. */
function observeClaims(pool: pg.Pool, observe: (rows: readonly { id: string; payload: unknown }[]) => void): void {
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    Object.assign(client, {
      // As it was (`pool.query` passes a callback), the claims' answers seen on their way.
      query: (...args: unknown[]) => {
        const answer = query(...args);
        if (typeof args[0] === 'string' && args[0].includes('FOR UPDATE') && answer instanceof Promise) {
          return answer.then((result: pg.QueryResult) => {
            observe(result.rows as { id: string; payload: unknown }[]);
            return result;
          });
        }
        return answer;
      },
    });
  });
}

describe('the outbox poller', () => {
  it('routes a committed write once and nothing from a rolled-back one', async () => {
    const { admin, appended, poller, eventIds } = await setUp();
    const client = await admin.connect();
    let committed: string;
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO orders VALUES (1, 10)');
      committed = await enqueueOutboxEvent(client, {
        topic: 'orders',
        type: 'order.created',
        payload: { id: 1, total: 10 },
        entity: 'order:1',
        table: 'orders',
        operation: 'insert',
      });
      await client.query('COMMIT');
      await client.query('BEGIN');
      await client.query('INSERT INTO orders VALUES (2, 20)');
      await enqueueOutboxEvent(client, { topic: 'orders', type: 'order.created', payload: { id: 2 }, entity: 'order:2' });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    const outbox = poller(admin);
    expect(await outbox.pollOnce()).toBe(1);
    expect(await outbox.pollOnce()).toBe(0);
    expect(appended).toHaveLength(1);
    expect(appended[0]).toMatchObject({
      id: (await eventIds([committed]))[0]!,
      topic: 'orders',
      source: 'database',
      type: 'order.created',
      payload: { id: 1, total: 10 },
      metadata: { table: 'orders', operation: 'insert', entity: 'order:1', scope: { ...scope, tenant: undefined } },
    });
    expect((await admin.query('SELECT id FROM orders')).rows).toEqual([{ id: 1 }]);
    expect(await outbox.status()).toMatchObject({ pending: 0, dead: 0, lastError: null });
  });

  it('3 pollers on one outbox route 5,000 events of 200 entities exactly once, each entity in insert order', { timeout: 120_000 }, async () => {
    const { db, appended, counted, poller, eventIds } = await setUp();
    const pollers = [0, 1, 2].map((index) => poller(openPool(db.url, `outbox-poller-${index}`, 2), { intervalMs: 20 }));
    for (const each of pollers) each.start();

    // Each writer owns its entities and commits one transaction at a time, as an application
    // that locks its business row does: one entity's rows commit in id order.
    const WRITERS = 5;
    const ENTITIES = 200;
    const TOTAL = 5_000;
    const rowIdsOf = new Map<string, string[]>();
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, writer) => {
        const pool = openPool(db.url, `outbox-writer-${writer}`, 1);
        const client = await pool.connect();
        try {
          for (let tx = 0; tx < TOTAL / WRITERS / 10; tx += 1) {
            await client.query('BEGIN');
            for (let row = 0; row < 10; row += 1) {
              const entity = `e${writer + WRITERS * ((tx * 10 + row) % (ENTITIES / WRITERS))}`;
              const id = await enqueueOutboxEvent(client, { topic: 'orders', type: 'order.updated', payload: { tx, row }, entity });
              rowIdsOf.set(entity, [...(rowIdsOf.get(entity) ?? []), id]);
            }
            await client.query('COMMIT');
          }
        } finally {
          client.release();
        }
      }),
    );

    await waitFor(() => appended.length >= TOTAL, { timeoutMs: 60_000, message: `routed ${appended.length} of ${TOTAL}` });
    await Promise.all(pollers.map((each) => each.stop()));
    // Nothing left behind, nothing routed a second time.
    expect(await Promise.all(pollers.map((each) => each.pollOnce()))).toEqual([0, 0, 0]);
    expect(appended).toHaveLength(TOTAL);
    expect(new Set(appended.map((event) => event.id)).size).toBe(TOTAL);
    expect(counted.routed).toBe(TOTAL);
    expect(rowIdsOf.size).toBe(ENTITIES);
    for (const [entity, rowIds] of rowIdsOf) {
      const ordered = [...rowIds].sort((a, b) => Number(a) - Number(b));
      const routed = appended.filter((event) => event.metadata.entity === entity).map((event) => event.id);
      expect(routed, entity).toEqual(await eventIds(ordered));
    }
  });

  it('drains a backlog of one entity without claiming from the partitions that have no rows at every batch, the others still claimed once an interval', async () => {
    const { db, admin, appended, poller, enqueue } = await setUp();
    await admin.query(
      `INSERT INTO event_outbox (topic, event_type, payload, entity) SELECT 'orders', 'order.updated', jsonb_build_object('n', n), 'order:hot' FROM generate_series(1, 1000) AS n`,
    );
    // How many rows each claim of the poller's answered.
    const claims: number[] = [];
    const pool = openPool(db.url, 'outbox-skewed');
    observeClaims(pool, (rows) => claims.push(rows.length));
    const outbox = poller(pool, { intervalMs: 3_600_000 });

    let handled = 0;
    for (let pass = 0; pass < 11 && handled < 1_000; pass += 1) handled += await outbox.pollOnce();
    expect(handled).toBe(1_000);
    expect(appended.map((event) => event.payload['n'])).toEqual(Array.from({ length: 1_000 }, (_, n) => n + 1));
    // Every partition in one claim, then the backlog's own, a batch each (a claim of partitions with
    // no rows reads through the whole backlog: it was made for the 15 others at every batch).
    expect(claims.filter((rows) => rows === 0).length).toBeLessThanOrEqual(1);
    expect(claims.length).toBeLessThanOrEqual(11);

    // Another entity's row waits for the interval while the backlog is behind: its last claim (of
    // nothing) ends it, and the next pass claims from every partition again.
    await enqueue({ entity: 'order:cold', payload: { n: 0 } });
    expect(await outbox.pollOnce()).toBe(0);
    expect(await outbox.pollOnce()).toBe(1);
    expect(appended.at(-1)?.metadata.entity).toBe('order:cold');
  });

  it('keeps a partition another poller holds among those behind, and claims from it again as soon as the lock is free', async () => {
    const { db, admin, appended, poller } = await setUp();
    // Two entities of two partitions (of the default 16), their 600 rows interleaved.
    const { rows: entities } = await admin.query<{ entity: string; partition: number }>(
      `SELECT DISTINCT ON (partition) entity, partition
         FROM (SELECT 'order:' || n AS entity, mod(abs(hashtext('order:' || n)::bigint), 16)::int AS partition FROM generate_series(1, 50) AS n) AS e
        ORDER BY partition, entity LIMIT 2`,
    );
    const [held, free] = entities as [{ entity: string; partition: number }, { entity: string; partition: number }];
    await admin.query(
      `INSERT INTO event_outbox (topic, event_type, payload, entity)
       SELECT 'orders', 'order.updated', jsonb_build_object('n', n), CASE WHEN n % 2 = 0 THEN $1 ELSE $2 END FROM generate_series(1, 600) AS n`,
      [held.entity, free.entity],
    );
    const outbox = poller(openPool(db.url, 'outbox-held'), { intervalMs: 3_600_000 });
    // Every partition in one claim (50 rows of each entity), then each partition behind: 100 each.
    expect(await outbox.pollOnce()).toBe(300);

    // Another poller holds one of the two partitions (its transaction-scoped lock, as a poller takes it).
    const lockKey = createHash('sha256').update(`tributary-outbox:${OUTBOX_ID}`).digest().readInt32BE(0);
    const holder = await admin.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [lockKey, held.partition]);
    expect(await outbox.pollOnce()).toBe(100);
    await holder.query('COMMIT');
    holder.release();

    // Both again at once: the held one was dropped from those behind, left until the interval (an hour here).
    expect(await outbox.pollOnce()).toBe(150);
    const ofHeld = appended.filter((event) => event.metadata.entity === held.entity).map((event) => event.payload['n']);
    expect(ofHeld).toEqual(Array.from({ length: 250 }, (_, index) => 2 * (index + 1)));
  });

  it('sets poison rows aside with their reason and routes the same entity’s later rows', async () => {
    const { db, admin, appended, counted, poller, enqueue, eventIds } = await setUp();
    // The table's own check would refuse the bad operation; an operator's table may not have it.
    await admin.query('ALTER TABLE event_outbox DROP CONSTRAINT event_outbox_operation_check');
    const raw = async (topic: string, type: string, payload: string, tenant: string | null, operation: string | null = null) => {
      const result = await admin.query<{ id: string }>(
        `INSERT INTO event_outbox (topic, event_type, payload, tenant, entity, operation)
         VALUES ($1, $2, $3::jsonb, $4, 'order:1', $5) RETURNING id::text AS id`,
        [topic, type, payload, tenant, operation],
      );
      return result.rows[0]!.id;
    };
    const first = await enqueue({ payload: { n: 1 }, tenant: 'a', entity: 'order:1' });
    const poison = {
      [await raw('orders', 'order.updated', '[1, 2]', 'a')]: 'payload is not a JSON object',
      [await raw('bad topic', 'order.updated', '{}', 'a')]: 'invalid topic name',
      [await raw('orders', '', '{}', 'a')]: 'invalid event_type',
      [await raw('orders', 'x'.repeat(201), '{}', 'a')]: 'invalid event_type',
      [await raw('orders', 'order.updated', '{}', null)]: 'tenant missing',
      [await raw('orders', 'order.updated', JSON.stringify({ big: 'x'.repeat(200) }), 'a')]: 'payload over 100 bytes',
      [await raw('orders', 'order.updated', '{}', 'a', 'upsert')]: 'invalid operation',
    };
    // Over the batch's margin (4× the limit): not read with the batch, but on its own, and judged by its JSON.
    const huge = await raw('orders', 'order.updated', JSON.stringify({ big: 'x'.repeat(1_000) }), 'a');
    poison[huge] = 'payload over 100 bytes';
    const last = await enqueue({ payload: { n: 2 }, tenant: 'a', entity: 'order:1' });

    const pool = openPool(db.url, 'outbox-poison');
    const payloadsRead = new Map<string, unknown>();
    observeClaims(pool, (rows) => rows.forEach((row) => payloadsRead.set(row.id, row.payload)));
    const outbox = poller(pool, { requireTenant: true, maxPayloadBytes: 100 });
    expect(await outbox.pollOnce()).toBe(10);
    expect(payloadsRead.get(huge)).toBeNull();
    expect(appended.map((event) => event.id)).toEqual(await eventIds([first, last]));
    const dead = await admin.query<{ id: string; dead_reason: string }>(
      'SELECT id::text AS id, dead_reason FROM event_outbox WHERE dead_reason IS NOT NULL ORDER BY id',
    );
    expect(Object.fromEntries(dead.rows.map((row) => [row.id, row.dead_reason]))).toEqual(poison);
    expect(await outbox.status()).toMatchObject({ pending: 0, oldestPendingSeconds: null, dead: 8 });
    expect(counted.dead.sort()).toEqual(Object.values(poison).sort());
  });

  it('routes the rows again with the same ids after a crash between routing and marking', async () => {
    const { db, admin, router, appended, poller, enqueue, eventIds } = await setUp();
    const rowIds = [await enqueue({ entity: 'order:1' }), await enqueue({ entity: 'order:1' }), await enqueue({ entity: 'order:2' })];
    // The poller's connection dies after the router placed the events, before the rows are marked.
    let crashes = 1;
    const crashing: EventRouter = {
      route: (input) => router.route(input),
      completePlaced: (events) => router.completePlaced(events),
      async routeMany(inputs) {
        const placed = await router.routeMany(inputs);
        if (crashes > 0) {
          crashes -= 1;
          await admin.query(
            `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
              WHERE application_name = 'outbox-crash' AND datname = current_database()`,
          );
        }
        return placed;
      },
    };
    const outbox = poller(openPool(db.url, 'outbox-crash', 1), { router: crashing, partitions: 1 });
    await expect(outbox.pollOnce()).rejects.toThrow();
    expect(appended.map((event) => event.id)).toEqual(await eventIds(rowIds));
    expect(await outbox.status()).toMatchObject({ pending: 3 });

    expect(await outbox.pollOnce()).toBe(3);
    expect(appended.map((event) => event.id)).toEqual(await eventIds([...rowIds, ...rowIds]));
    expect(await outbox.status()).toMatchObject({ pending: 0, dead: 0 });
  });

  it('keeps tenants apart: each row lands in its own tenant’s stream, no tenant in the application-wide one', async () => {
    const { admin, log, appended, poller, enqueue, eventIds } = await setUp();
    const streams = {
      a: streamOf({ ...scope, tenant: 'a' }, 'orders'),
      b: streamOf({ ...scope, tenant: 'b' }, 'orders'),
      none: streamOf({ ...scope, tenant: undefined }, 'orders'),
    };
    const heads = { a: await log.head(streams.a), b: await log.head(streams.b), none: await log.head(streams.none) };
    const ids = {
      a: await enqueue({ tenant: 'a', payload: { secret: 'a' } }),
      b: await enqueue({ tenant: 'b', payload: { secret: 'b' } }),
      none: await enqueue({ payload: { everyone: true } }),
    };
    const outbox = poller(admin, { intervalMs: 20 });
    outbox.start();
    await waitFor(() => appended.length === 3);
    for (const key of ['a', 'b', 'none'] as const) {
      const read = await log.readAfter(streams[key], heads[key], 100);
      expect(read.map((event) => event.id), key).toEqual(await eventIds([ids[key]]));
    }
  });

  it('deletes processed rows older than the retention, never pending ones', async () => {
    const { admin, poller, enqueue } = await setUp();
    const [old1, old2, recent] = [await enqueue(), await enqueue(), await enqueue()];
    const outbox = poller(admin, { retentionMs: 3_600_000 });
    expect(await outbox.pollOnce()).toBe(3);
    const pending = await enqueue();
    await admin.query(`UPDATE event_outbox SET processed_at = now() - interval '2 hours' WHERE id = ANY($1::bigint[])`, [[old1, old2]]);
    await admin.query(`UPDATE event_outbox SET created_at = now() - interval '2 days' WHERE id = $1`, [pending]);
    expect(await outbox.sweepRetention()).toBe(2);
    const left = await admin.query<{ id: string }>('SELECT id::text AS id FROM event_outbox ORDER BY id');
    expect(left.rows.map((row) => row.id)).toEqual([recent, pending]);
  });

  it('a retention sweep takes no batch after its budget is spent or its signal aborted, and says more is left', async () => {
    const { admin } = await setUp();
    await admin.query(
      `INSERT INTO event_outbox (topic, event_type, payload, processed_at) SELECT 'orders', 'order.created', '{}', now() - interval '2 hours' FROM generate_series(1, 250)`,
    );
    const table = outboxTable('event_outbox');
    const left = async () => (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM event_outbox')).rows[0]?.n;

    // A budget of 0 is spent once the first batch is done.
    expect(await deleteProcessed(admin, table, 3_600_000, { batchSize: 100, budgetMs: 0 })).toEqual({ deleted: 100, more: true });
    expect(await deleteProcessed(admin, table, 3_600_000, { batchSize: 100, budgetMs: 60_000, signal: AbortSignal.abort() })).toEqual({ deleted: 100, more: true });
    expect(await left()).toBe(50);
    expect(await deleteProcessed(admin, table, 3_600_000, { batchSize: 100, budgetMs: 60_000 })).toEqual({ deleted: 50, more: false });
    expect(await left()).toBe(0);
  });

  it('reports pending rows, the oldest pending age and dead rows', async () => {
    const { admin, poller, enqueue } = await setUp();
    const outbox = poller(admin);
    expect(await outbox.status()).toEqual({ pending: 0, oldestPendingSeconds: null, dead: 0, lastError: null });
    const old = await enqueue();
    // A raw INSERT: the SDK refuses such a row before writing it; another writer's can still arrive.
    await admin.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('not a topic', 'order.created', '{}')`);
    await enqueue();
    await admin.query(`UPDATE event_outbox SET created_at = now() - interval '1 hour' WHERE id = $1`, [old]);
    const before = await outbox.status();
    expect(before).toMatchObject({ pending: 3, dead: 0 });
    expect(before.oldestPendingSeconds).toBeGreaterThanOrEqual(3_600);
    expect(await outbox.pollOnce()).toBe(3);
    expect(await outbox.status()).toEqual({ pending: 0, oldestPendingSeconds: null, dead: 1, lastError: null });
    // The row set aside stays counted until written to the durable counts of `outbox.dead_rows`, not handed over with a status.
    const deadRows = outbox.deadRows.unwritten();
    expect(deadRows).toEqual(new Map([['invalid topic name', 1]]));
    expect(outbox.deadRows.unwritten()).toEqual(deadRows);
    outbox.deadRows.written(deadRows);
    expect(outbox.deadRows.unwritten()).toEqual(new Map());
  });

  it('stops idempotently; rows written after stop() stay pending', async () => {
    const { admin, appended, poller, enqueue } = await setUp();
    const outbox = poller(admin, { intervalMs: 20 });
    await enqueue({ entity: 'order:1' });
    outbox.start();
    await waitFor(() => appended.length === 1);
    await Promise.all([outbox.stop(), outbox.stop()]);
    await outbox.stop();
    await enqueue({ entity: 'order:1' });
    expect(await outbox.status()).toMatchObject({ pending: 1 });
    expect(appended).toHaveLength(1);
  });

  it('reconnects after Postgres restarts and loses nothing', { timeout: 90_000 }, async () => {
    const postgres = await startPrivatePostgres();
    const { appended, poller, enqueue, eventIds } = await setUp(postgres.url);
    const outbox = poller(openPool(postgres.url, 'outbox-restart', 2), { intervalMs: 20 });
    outbox.start();
    const before = await enqueue({ entity: 'order:1' });
    await waitFor(() => appended.length === 1);

    await postgres.stop();
    await expect(outbox.status()).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    await postgres.start();

    const after = await enqueue({ entity: 'order:1' });
    await waitFor(() => appended.length === 2, { timeoutMs: 30_000, message: 'the row written after the restart was not routed' });
    expect(appended.map((event) => event.id)).toEqual(await eventIds([before, after]));
    await waitFor(async () => (await outbox.status()).lastError === null);
  });

  it('gives up on statements a silent database never answers, routes on over a new connection, and stops', { timeout: 60_000 }, async () => {
    const { db, appended, poller, enqueue, eventIds } = await setUp();
    const url = new URL(db.url);
    const proxy = await startTcpProxy(Number(url.port));
    url.port = String(proxy.port);
    // The production pool, with a short wait for answers: what the test is about is that there is one.
    const pool = createOutboxPool(url.toString(), logger, { queryTimeoutMs: 500 });
    onTestFinished(() => pool.end());
    const outbox = poller(pool, { intervalMs: 20 });
    const rowIds = [await enqueue({ entity: 'order:1' })];
    outbox.start();
    await waitFor(() => appended.length === 1);

    // Every open connection swallows what is sent on it, both ways; new connections pass.
    proxy.blackhole(true);
    rowIds.push(await enqueue({ entity: 'order:1' }));
    await waitFor(() => appended.length === 2, { timeoutMs: 20_000, message: 'the row written while the connections were silent was not routed' });
    expect(appended.map((event) => event.id)).toEqual(await eventIds(rowIds));
    await outbox.stop();
  });

  it('says UNAVAILABLE when the outbox’s database cannot be reached; its loop neither crashes nor holds up stop()', async () => {
    const { db, poller } = await setUp();
    const url = new URL(db.url);
    url.pathname = '/no_such_database';
    const outbox = poller(openPool(url.toString()), { intervalMs: 20 });
    outbox.start();
    await expect(outbox.status()).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    await expect(outbox.pollOnce()).rejects.toThrow(/no_such_database/);
    await outbox.stop();
  });
});

describe('the outbox DDL', () => {
  const indexesOf = async (pool: pg.Pool) =>
    (await pool.query<{ name: string }>("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'event_outbox' ORDER BY indexname")).rows.map((row) => row.name);

  it('creates a fresh table with its dead rows’ index, and never builds that index on an existing table when run again', async () => {
    const db = await createTestDatabase();
    const admin = openPool(db.url, 'outbox-admin');
    const ddl = outboxTableDdl(outboxTable('event_outbox'));
    await admin.query(ddl);
    const all = ['event_outbox_dead_idx', 'event_outbox_pending_idx', 'event_outbox_pkey', 'event_outbox_processed_idx'];
    expect(await indexesOf(admin)).toEqual(all);
    await admin.query(ddl);
    expect(await indexesOf(admin)).toEqual(all);

    // A table made by an earlier version's DDL: running the current one leaves it without the index.
    await admin.query('DROP INDEX event_outbox_dead_idx');
    await admin.query(ddl);
    expect(await indexesOf(admin)).toEqual(all.filter((name) => name !== 'event_outbox_dead_idx'));
  });
});
