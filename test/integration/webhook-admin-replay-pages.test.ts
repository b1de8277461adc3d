/**
 * A replay read and stored a page at a time, against a real Postgres (and Redis for its log): a
 * range of more events than a page holds is stored whole and in order, from the event log and from
 * the endpoint's own deliveries, with no insert statement holding more than a page's rows or bytes
 * — what a replay holds in memory is a page, whatever its events weigh — and a replay that fails
 * after its first page stores nothing.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database, Queryable, Row } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import type { UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createLocalWake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import { insertDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createWebhookAdmin, type WebhookAdmin } from '../../src/pipeline/webhooks/webhook-admin.ts';
import { sharedDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

/** Rows and body bytes one insert statement of a replay holds at most (replay-deliveries.ts). */
const PAGE_ROWS = 500;
const PAGE_BYTES = 4 * 1024 * 1024;
const SCOPE: Scope = { app: 'app', env: 'env', tenant: undefined };
const HOUR_MS = 3_600_000;
const silent = createLogger({ level: 'silent' });
const shared = sharedDeliveryFixture();

const logs: Record<string, () => EventLog> = {
  memory: () => {
    const log = createMemoryLog({ retention: { maxEvents: 10_000, maxAgeMs: HOUR_MS }, publish: () => undefined });
    onTestFinished(() => log.close());
    return log;
  },
  redis: () => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => {
      await redis.quit();
    });
    return createRedisLog({ redis, retention: { maxEvents: 10_000, maxAgeMs: HOUR_MS }, keyPrefix: uniquePrefix() });
  },
};

interface InsertStatement {
  readonly rows: number;
  readonly bodyBytes: number;
}

/**
 * The body column of an insert: a `text[]` literal (delivery-store.ts builds it). Each body is JSON
 * (no raw control characters), its `\` and `"` escaped as in JSON: read as a JSON array.
 */
function bodiesOf(param: unknown): string[] {
  return JSON.parse(`[${(param as string).slice(1, -1)}]`) as string[];
}

/** The database, with the deliveries' insert statements it runs (inside transactions too) written down. */
function recordingInserts(db: Database): { readonly db: Database; readonly inserts: InsertStatement[] } {
  const inserts: InsertStatement[] = [];
  const recording = (target: Queryable): Queryable => ({
    query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: Parameters<Queryable['query']>[2]) {
      if (sql.includes('tributary_webhook_insert_deliveries(') && params) {
        const bodies = bodiesOf(params[5]);
        inserts.push({ rows: bodies.length, bodyBytes: bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0) });
      }
      return target.query<R>(sql, params, options);
    },
    exec: (sql) => target.exec(sql),
  });
  return {
    db: { ...recording(db), kind: db.kind, transaction: (work) => db.transaction((tx) => work(recording(tx))), ping: () => db.ping(), close: () => db.close() },
    inserts,
  };
}

async function adminWith(log: EventLog, db: Database, maxBodyBytes = 262_144): Promise<WebhookAdmin> {
  const endpoints = await createEndpointCache({ db, refreshMs: 600_000, logger: silent });
  const statistics = createDeliveryStatistics({ db, logger: silent });
  const admin = createWebhookAdmin({ db, log, endpoints, scheduler: createLocalWake(), statistics, allowPrivateTargets: true, maxBodyBytes, logger: silent });
  onTestFinished(async () => {
    await admin.close();
    await statistics.close();
    endpoints.close();
  });
  return admin;
}

/** The endpoint's replayed deliveries, in the order they were stored (a lane's order). */
async function replayed(endpointId: string): Promise<{ event_id: string; bytes: number }[]> {
  const { rows } = await shared.db.query<{ event_id: string; bytes: number }>(
    `SELECT event_id, octet_length(body)::int AS bytes FROM webhook_deliveries WHERE endpoint_id = $1 AND trigger = 'replay' ORDER BY id`,
    [endpointId],
  );
  return rows;
}

/** `count` events of three entities over two topics, a millisecond apart and taking turns, oldest first. */
function interleaved(count: number, from: number, payload: (n: number) => Record<string, unknown> = (n) => ({ n })): UnplacedEvent[] {
  return Array.from({ length: count }, (_, n) => ({
    id: `evt_page_${n}`,
    topic: n % 2 === 0 ? 'orders' : 'payments',
    source: 'system',
    type: 'order.updated',
    payload: payload(n),
    metadata: { timestamp: from + n, scope: SCOPE, entity: `order-${n % 3}` },
  }));
}

async function appendAll(log: EventLog, events: readonly UnplacedEvent[]): Promise<void> {
  for (const topic of ['orders', 'payments']) {
    await log.appendMany(
      streamOf(SCOPE, topic),
      events.filter((event) => event.topic === topic),
    );
  }
}

describe.each(Object.keys(logs))('a replay from the %s event log', (kind) => {
  it('stores more events than a page holds, all of them, oldest first, no statement holding more than a page', { timeout: 60_000 }, async () => {
    // Event times close to now: the Redis log finds an event by its entry id too, within a minute of its time.
    const events = interleaved(2 * PAGE_ROWS + 201, Date.now() - 5_000);
    const log = logs[kind]!();
    await appendAll(log, events);
    const { db, inserts } = recordingInserts(shared.db);
    const admin = await adminWith(log, db);
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders', 'payments'] });

    expect(await admin.replay(SCOPE, endpoint.id, { since: new Date(Date.now() - HOUR_MS), onlyFailed: false })).toBe(events.length);
    expect((await replayed(endpoint.id)).map((row) => row.event_id)).toEqual(events.map((event) => event.id));
    expect(inserts.length).toBeGreaterThanOrEqual(3);
    expect(inserts.reduce((sum, insert) => sum + insert.rows, 0)).toBe(events.length);
    for (const insert of inserts) expect(insert.rows).toBeLessThanOrEqual(PAGE_ROWS);
  });
});

describe('a replay read a page at a time', () => {
  it('stores events of ~1 MiB a few per statement, within a page’s bytes, bodies whole', { timeout: 60_000 }, async () => {
    const filler = 'x'.repeat(1024 * 1024);
    const events = interleaved(12, Date.now() - 60_000, (n) => ({ n, filler }));
    const log = logs['memory']!();
    await appendAll(log, events);
    const { db, inserts } = recordingInserts(shared.db);
    const admin = await adminWith(log, db, 2 * 1024 * 1024);
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders', 'payments'] });

    expect(await admin.replay(SCOPE, endpoint.id, { since: new Date(Date.now() - HOUR_MS), onlyFailed: false })).toBe(events.length);
    const rows = await replayed(endpoint.id);
    expect(rows.map((row) => row.event_id)).toEqual(events.map((event) => event.id));
    // Each body carries its event's data: none was cut to fit a page.
    for (const row of rows) expect(row.bytes).toBeGreaterThan(filler.length);
    expect(inserts.length).toBeGreaterThanOrEqual(4);
    for (const insert of inserts) expect(insert.bodyBytes).toBeLessThanOrEqual(PAGE_BYTES);
  });

  it('stores copies of more of the endpoint’s deliveries than a page holds, oldest event first, no statement holding more than a page', { timeout: 60_000 }, async () => {
    const endpointId = await shared.fixture.endpoint('replayed from its deliveries');
    const from = Date.now() - 30 * 60_000;
    const count = 2 * PAGE_ROWS + 201;
    // Stored newest event first: their ids run the other way round from their events' times.
    const originals = Array.from({ length: count }, (_, n) => ({ ...shared.fixture.delivery(`|order-${n % 3}`), endpointId, eventTime: new Date(from + (count - n) * 1_000) }));
    await insertDeliveries(shared.db, originals);
    await shared.db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE endpoint_id = $1`, [endpointId]);
    const { db, inserts } = recordingInserts(shared.db);
    // The log holds none of them (a restart emptied it).
    const admin = await adminWith(logs['memory']!(), db);

    expect(await admin.replay(SCOPE, endpointId, { since: new Date(Date.now() - HOUR_MS), onlyFailed: false })).toBe(count);
    expect((await replayed(endpointId)).map((row) => row.event_id)).toEqual(originals.map((delivery) => delivery.eventId).reverse());
    expect(inserts.length).toBeGreaterThanOrEqual(3);
    for (const insert of inserts) expect(insert.rows).toBeLessThanOrEqual(PAGE_ROWS);
  });

  it('copies an event the log let go of since the replay was planned from the endpoint’s first delivery of it, and leaves out one gone from both', async () => {
    const events = interleaved(3, Date.now() - 60_000, (n) => ({ n, from: 'the log' }));
    const [kept, copied, lost] = events.map((event) => event.id);
    const memory = logs['memory']!();
    await appendAll(memory, events);
    // After the plan's read, the log no longer holds two of them (their retention ran out meanwhile).
    let reads = 0;
    const log: EventLog = {
      ...memory,
      eventsBetween: (match, keep, ...rest) => {
        reads += 1;
        return memory.eventsBetween(match, reads === 1 ? keep : (event) => event.id === kept && keep(event), ...rest);
      },
    };
    const admin = await adminWith(log, shared.db);
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders', 'payments'] });
    // The endpoint had one of those two routed to it.
    const first = events[1]!;
    await insertDeliveries(shared.db, [
      { endpointId: endpoint.id, eventId: copied!, eventType: first.type, topic: first.topic, lane: '|order-1', body: '{"from":"its delivery"}', trigger: 'initial', eventTime: new Date(first.metadata.timestamp) },
    ]);

    expect(await admin.replay(SCOPE, endpoint.id, { since: new Date(Date.now() - HOUR_MS), onlyFailed: false })).toBe(2);
    const { rows } = await shared.db.query<{ event_id: string; body: string }>(`SELECT event_id, body FROM webhook_deliveries WHERE endpoint_id = $1 AND trigger = 'replay' ORDER BY id`, [endpoint.id]);
    expect(rows.map((row) => [row.event_id, JSON.parse(row.body) as unknown])).toEqual([
      [kept, expect.objectContaining({ data: { n: 0, from: 'the log' } })],
      [copied, { from: 'its delivery' }],
    ]);
    expect(rows.map((row) => row.event_id)).not.toContain(lost);
  });

  it('stores nothing when the log fails while a page after the first is read, and all of it when asked again', { timeout: 60_000 }, async () => {
    const events = interleaved(2 * PAGE_ROWS + 201, Date.now() - 60_000);
    const memory = logs['memory']!();
    await appendAll(memory, events);
    // The replay reads the log once to plan, then once per page: the third read is the second page's.
    let reads = 0;
    const log: EventLog = {
      ...memory,
      eventsBetween: (...args) => {
        reads += 1;
        return reads === 3 ? Promise.reject(new Error('the log went away')) : memory.eventsBetween(...args);
      },
    };
    const admin = await adminWith(log, shared.db);
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders', 'payments'] });
    const range = { since: new Date(Date.now() - HOUR_MS), onlyFailed: false };

    await expect(admin.replay(SCOPE, endpoint.id, range)).rejects.toThrow('the log went away');
    expect(await replayed(endpoint.id)).toEqual([]);
    expect(await admin.replay(SCOPE, endpoint.id, range)).toBe(events.length);
    expect((await replayed(endpoint.id)).map((row) => row.event_id)).toEqual(events.map((event) => event.id));
  });
});
