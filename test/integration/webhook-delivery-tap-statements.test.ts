/**
 * The routing tap storing a chunk larger than one insert statement holds, against a real Postgres
 * (the pool wrapped to write down each insert statement, or to fail one): a CDC chunk is up to
 * 1,000 events, each selected by every endpoint of its table, and its deliveries go in statements
 * of at most STATEMENT_ROWS rows and STATEMENT_BYTES of bodies, one after another — stored whole
 * and in each lane's order, only each lane's oldest delivery scheduled, the own-lane deliveries
 * leased for this process's worker handed to it whichever statement stored them. A statement that
 * fails after earlier ones committed fails the routing, yet the committed ones' heads are
 * scheduled, and the retry stores the rest once. And once an insert has committed, a failure of
 * the look for late heads after it neither fails the routing nor keeps the leased deliveries from
 * the worker (they would have stayed leased, unsent, for a whole lease).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database, Queryable, Row } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createLocalWake, type LocalWake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import { insertDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createDeliveryHandoff, type DeliveryHandoff } from '../../src/pipeline/webhooks/webhook-handoff.ts';
import { createWebhookTap, STATEMENT_BYTES, STATEMENT_ROWS, type WebhookTap } from '../../src/pipeline/webhooks/webhook-tap.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
/** Longer than a test takes: the endpoint cache is read once, and no kept delivery ages out. */
const NEVER_MS = 600_000;
const LEASE_MS = 30_000;

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

/** What a test does to the database's statements: writes down the inserts, fails some. */
interface Faults {
  /** Fails the n-th insert statement (1-based) before it runs. */
  failInsert?: number;
  /** Fails the look for late heads (`headsAmong`'s lock) while set. */
  failLateHeads?: boolean;
}

/** The database, with its delivery inserts written down and the faults a test asks for. */
function watchedDatabase(db: Database, faults: Faults): { readonly db: Database; readonly inserts: InsertStatement[] } {
  const inserts: InsertStatement[] = [];
  const watched: Queryable = {
    query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: Parameters<Queryable['query']>[2]) {
      if (sql.includes('tributary_webhook_insert_deliveries(') && params) {
        if (faults.failInsert === inserts.length + 1) {
          inserts.push({ rows: 0, bodyBytes: 0 });
          return Promise.reject(new Error('the insert statement failed'));
        }
        const bodies = bodiesOf(params[5]);
        inserts.push({ rows: bodies.length, bodyBytes: bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0) });
      }
      if (faults.failLateHeads === true && sql.includes('FOR SHARE OF e')) return Promise.reject(new Error('the look for late heads failed'));
      return db.query<R>(sql, params, options);
    },
    exec: (sql) => db.exec(sql),
  };
  return { db: { ...watched, kind: db.kind, transaction: (work) => db.transaction(work), ping: () => db.ping(), close: () => db.close() }, inserts };
}

interface Harness {
  readonly fixture: DeliveryFixture;
  /** The fixture's endpoint and a second one: every event goes to both. */
  readonly endpointIds: readonly string[];
  readonly tap: WebhookTap;
  readonly wake: LocalWake;
  readonly handoff: DeliveryHandoff;
  readonly inserts: InsertStatement[];
  readonly faults: Faults;
}

/** A tap over a database of the test's own, scheduling on an in-process wake whose intake is a worker's handoff. */
async function harness(maxBodyBytes = 65_536): Promise<Harness> {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const endpointIds = [fixture.endpointId, await fixture.endpoint('second')];
  const faults: Faults = {};
  const { db, inserts } = watchedDatabase(fixture.db, faults);
  const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: NEVER_MS, logger });
  onTestFinished(() => endpoints.close());
  const statistics = createDeliveryStatistics({ db: fixture.db, logger });
  onTestFinished(() => statistics.close());
  const wake = createLocalWake();
  const handoff = createDeliveryHandoff({ leaseMs: LEASE_MS, maxKept: 100_000, maxAgeMs: NEVER_MS, roomOf: () => 100_000 });
  wake.attach(handoff.intake);
  const tap = createWebhookTap({ db, endpoints, scheduler: wake, statistics, logger, maxBodyBytes });
  return { fixture, endpointIds, tap, wake, handoff, inserts, faults };
}

/**
 * `count` events of a CDC chunk, oldest first: every fourth of no entity (a lane of its own, leased
 * for the worker as it is stored), the others taking turns among three entities.
 */
function chunk(count: number, payload: (n: number) => Record<string, unknown> = (n) => ({ n })): RealtimeEvent[] {
  return Array.from({ length: count }, (_, n) => ({
    id: `evt_chunk_${n}`,
    topic: 'orders',
    source: 'database',
    type: 'orders.updated',
    payload: payload(n),
    cursor: `0-${n}`,
    metadata: {
      timestamp: Date.now(),
      scope: { app: 'app', env: 'env', tenant: undefined },
      ...(n % 4 !== 3 && { entity: `order-${n % 3}` }),
      table: 'orders',
      operation: 'update',
    },
  }));
}

type StoredRow = {
  id: string;
  endpoint_id: string;
  event_id: string;
  lane: string;
  leased: boolean;
};

async function storedRows(db: Queryable): Promise<StoredRow[]> {
  const { rows } = await db.query<StoredRow>(`SELECT d.id::text AS id, d.endpoint_id, d.event_id, d.lane, d.leased_until IS NOT NULL AS leased FROM webhook_deliveries d ORDER BY d.id`);
  return rows;
}

/** Checks that every event reached every endpoint once, in the chunk's order, each lane's oldest alone scheduled or handed over. */
async function expectStoredInOrder({ fixture, endpointIds, wake, handoff }: Harness, events: readonly RealtimeEvent[]): Promise<void> {
  const rows = await storedRows(fixture.db);
  for (const endpointId of endpointIds) {
    expect(rows.filter((row) => row.endpoint_id === endpointId).map((row) => row.event_id)).toEqual(events.map((event) => event.id));
  }
  // Each lane's oldest delivery, per endpoint: the heads, and nothing else, was scheduled.
  const oldest = new Map<string, StoredRow>();
  for (const row of rows) if (!oldest.has(`${row.endpoint_id} ${row.lane}`)) oldest.set(`${row.endpoint_id} ${row.lane}`, row);
  const scheduled = wake.take(Number.MAX_SAFE_INTEGER, () => Number.MAX_SAFE_INTEGER);
  expect(new Set(scheduled.map((head) => head.id))).toEqual(new Set([...oldest.values()].map((row) => row.id)));
  expect(scheduled).toHaveLength(oldest.size);
  // The own-lane deliveries were leased by their statement and are kept for the worker, under that lease.
  const ownLane = rows.filter((row) => row.lane.startsWith('event:'));
  expect(ownLane.length).toBeGreaterThan(0);
  for (const row of ownLane) {
    expect(row.leased).toBe(true);
    const { lease } = (await fixture.db.query<{ lease: string }>(`SELECT leased_until::text AS lease FROM webhook_deliveries WHERE id = $1`, [row.id])).rows[0]!;
    expect(handoff.take({ id: row.id, lease })?.delivery.eventId).toBe(row.event_id);
  }
}

describe('the webhook tap storing a chunk larger than one statement', () => {
  it('stores more deliveries than a statement’s rows, all of them, in order, no statement over its rows', { timeout: 60_000 }, async () => {
    const h = await harness();
    // Two endpoints: 2 × 700 deliveries, more than a statement's rows.
    const events = chunk(700);
    await h.tap.deliver(events);

    expect(h.inserts.length).toBeGreaterThanOrEqual(2);
    expect(h.inserts.reduce((sum, insert) => sum + insert.rows, 0)).toBe(events.length * h.endpointIds.length);
    for (const insert of h.inserts) expect(insert.rows).toBeLessThanOrEqual(STATEMENT_ROWS);
    await expectStoredInOrder(h, events);
  });

  it('stores more body bytes than a statement holds, bodies whole, no statement over its bytes', { timeout: 60_000 }, async () => {
    const filler = 'x'.repeat(300 * 1024);
    const h = await harness(1024 * 1024);
    // 2 × 40 bodies of 300 KB: 24 MB, three statements' bytes at least.
    const events = chunk(40, (n) => ({ n, filler }));
    await h.tap.deliver(events);

    expect(h.inserts.length).toBeGreaterThanOrEqual(3);
    for (const insert of h.inserts) expect(insert.bodyBytes).toBeLessThanOrEqual(STATEMENT_BYTES);
    const { rows } = await h.fixture.db.query<{ bytes: number }>(`SELECT octet_length(body)::int AS bytes FROM webhook_deliveries`);
    expect(rows).toHaveLength(events.length * h.endpointIds.length);
    // Each body carries its event's data: none was cut to fit a statement.
    for (const row of rows) expect(row.bytes).toBeGreaterThan(filler.length);
    await expectStoredInOrder(h, events);
  });

  it('fails the routing when a statement fails after an earlier one committed, schedules the earlier one’s heads, and its retry stores the rest once', { timeout: 60_000 }, async () => {
    const h = await harness();
    const events = chunk(700);
    h.faults.failInsert = 2;
    await expect(h.tap.deliver(events)).rejects.toThrow('the insert statement failed');
    const first = await storedRows(h.fixture.db);
    expect(first).toHaveLength(h.inserts[0]!.rows);
    // The first statement's lanes' heads are scheduled: the retry would not schedule them (duplicates).
    const scheduled = h.wake.take(Number.MAX_SAFE_INTEGER, () => Number.MAX_SAFE_INTEGER);
    expect(scheduled.length).toBeGreaterThan(0);
    const storedIds = new Set(first.map((row) => row.id));
    for (const head of scheduled) expect(storedIds.has(head.id)).toBe(true);

    // The source routes the chunk again.
    delete h.faults.failInsert;
    await h.tap.deliver(events);
    const rows = await storedRows(h.fixture.db);
    for (const endpointId of h.endpointIds) {
      expect(rows.filter((row) => row.endpoint_id === endpointId).map((row) => row.event_id)).toEqual(events.map((event) => event.id));
    }
  });

  it('answers the routing and hands over the deliveries its insert leased when the look for late heads fails', { timeout: 60_000 }, async () => {
    const h = await harness();
    // Two events of one entity (the second is no head: the look for late heads runs) and one of its own lane (leased).
    const [first, , , own] = chunk(4);
    const second = { ...first!, id: 'evt_chunk_second', cursor: '0-4' };
    const events = [first!, second, own!];
    h.faults.failLateHeads = true;

    await h.tap.deliver(events);
    const rows = await storedRows(h.fixture.db);
    expect(rows).toHaveLength(events.length * h.endpointIds.length);
    const ownLane = rows.filter((row) => row.lane.startsWith('event:'));
    expect(ownLane).toHaveLength(h.endpointIds.length);
    // Handed to the worker under the lease its insert took — not left leased, unsent, until the lease runs out.
    for (const row of ownLane) {
      const { lease } = (await h.fixture.db.query<{ lease: string }>(`SELECT leased_until::text AS lease FROM webhook_deliveries WHERE id = $1`, [row.id])).rows[0]!;
      expect(h.handoff.take({ id: row.id, lease })?.delivery.id).toBe(row.id);
    }
    // The heads the insert told are scheduled: the entity's first event and the own-lane ones.
    const scheduled = h.wake.take(Number.MAX_SAFE_INTEGER, () => Number.MAX_SAFE_INTEGER);
    const expected = rows.filter((row) => row.event_id !== second.id);
    expect(new Set(scheduled.map((head) => head.id))).toEqual(new Set(expected.map((row) => row.id)));
  });

  it('stores each body byte for byte, whatever characters it holds', async () => {
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    // The body column goes as one array literal: quoting, escapes and separators must not show.
    const bodies = ['{"a":"b \\"quoted\\" \\\\ back"}', '', 'NULL', ' spaced ', '{a,b}', '"', '\\', 'line\nbreak\ttab', 'é ✓ \u2028 😀', '{}'];
    // Each twice in a row, as an event's body goes to its endpoints (escaped once), and the list again.
    const deliveries = [...bodies, ...bodies].flatMap((body) => [body, body]).map((body) => ({ ...fixture.delivery('event:own'), body }));
    await insertDeliveries(fixture.db, deliveries);
    const { rows } = await fixture.db.query<{ body: string }>(`SELECT body FROM webhook_deliveries ORDER BY id`);
    expect(rows.map((row) => row.body)).toEqual(deliveries.map((delivery) => delivery.body));
  });
});
