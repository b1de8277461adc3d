/**
 * The outbox's crash guarantee across real processes (README, "The outbox"): a worker process
 * killed with SIGKILL between routing a batch and marking it leaves the rows pending; the next
 * worker routes them again with the same ids, so a subscriber that de-duplicates on ids loses
 * nothing and sees each entity's events in insert order.
 *
 * A server in the test process and two `workers`-role child processes share one platform database
 * and Redis: the events cross from the workers to the subscriber's server through Redis. The kill
 * lands in the window it is about — routed, not marked — because the test holds a SHARE lock on
 * the outbox table: it lets the worker claim its first batch (SELECT … FOR UPDATE takes ROW SHARE)
 * and route it, and blocks the UPDATE that would mark it (ROW EXCLUSIVE).
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { outboxEventId } from '../../src/pipeline/events/outbox-event.ts';
import { gql } from '../helpers/cdc.ts';
import { eventOf, range, subscribeEvents, waitForSubscribers, type DeliveredEvent } from '../helpers/events.ts';
import { startMainProcess } from '../helpers/main-process.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const TOPIC = 'orders.updated';
/**
 * A backlog of many batches (a claim takes 100 rows): the killed worker's first batch is a
 * twentieth of it, so the rows routed twice are told from the rest, and the next worker drains the
 * rest behind a backlog, partition by partition.
 */
const ENTITIES = 100;
const PER_ENTITY = 20;
const TOTAL = ENTITIES * PER_ENTITY;

/** What a row's payload carries: its entity and its place in that entity's sequence. */
interface RowPayload {
  readonly entity: string;
  readonly seq: number;
}

const keyOf = ({ entity, seq }: RowPayload) => `${entity}#${seq}`;
const payloadOf = (event: DeliveredEvent) => event.payload as unknown as RowPayload;
/** What a redelivery repeats: everything but where and when the log placed it. */
const contentOf = ({ id, topic, source, type, payload }: DeliveredEvent) => ({ id, topic, source, type, payload });

describe('an outbox worker process killed mid-batch', () => {
  it(
    'SIGKILLed between routing a batch and marking it: the next worker routes the rows again with the same ids, nothing is lost and each entity keeps its order',
    { timeout: 180_000 },
    async () => {
      const [platform, appDb] = await Promise.all([createTestDatabase({ migrated: true }), createTestDatabase()]);
      const app = openTestPool(appDb.url);
      const shared = { DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
      const worker = { ...shared, TRIBUTARY_ROLE: 'workers', OUTBOX_POLL_INTERVAL_MS: '50' };
      const server = await startTestServer({ ...shared, TRIBUTARY_ROLE: 'server', JWT_SECRET: TEST_SECRET });
      const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
      const set = await gql(server, admin, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { table requestedMode } }', {
        url: appDb.url,
      });
      expect(set.errors).toBeUndefined();
      expect(set.data?.['setOutboxSource']).toEqual({ table: 'event_outbox', requestedMode: 'POLL' });

      // The backlog, in one statement: entity `order:k`'s rows carry seq 0, 1, … in id order.
      await app.query(
        `INSERT INTO event_outbox (topic, event_type, payload, tenant, entity)
         SELECT $1, 'order.updated', jsonb_build_object('entity', 'order:' || (i % $3), 'seq', i / $3), 'tenant-a', 'order:' || (i % $3)
           FROM generate_series(0, $2 - 1) AS i ORDER BY i`,
        [TOPIC, TOTAL, ENTITIES],
      );
      const pendingRows = async () => (await app.query<{ n: number }>('SELECT count(*)::int AS n FROM event_outbox WHERE processed_at IS NULL')).rows[0]?.n;

      // Subscribed after the topic's cursor: nothing routed from here on can be missed, however
      // long the server takes to join the stream.
      const reader = await signHs256({ tenant: 'tenant-a', permissions: ['orders.read'] });
      const cursor = (await gql(server, reader, 'query($t: String!) { topicCursor(topic: $t) }', { t: TOPIC })).data?.['topicCursor'];
      expect(cursor).toEqual(expect.any(String));
      const subscriber = await openAcknowledgedSocket(server.wsUrl, reader);
      subscribeEvents(subscriber, 'e', { topic: TOPIC, after: String(cursor) });
      await waitForSubscribers(server, 1);

      // Held until the first worker is dead: it routes its first batch, then cannot mark it.
      const blocker = new pg.Client({ connectionString: appDb.url });
      await blocker.connect();
      onTestFinished(() => blocker.end());
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE event_outbox IN SHARE MODE');

      // Nothing is taken from the socket's queue: it keeps every message, in arrival order.
      const delivered = () => subscriber.pending.map(eventOf);
      const first = await startMainProcess(worker);
      await waitFor(() => subscriber.pending.length > 0, { timeoutMs: 60_000, message: 'the first worker routes its first batch' });
      expect(delivered()[0]).toMatchObject({ topic: TOPIC, source: 'DATABASE', type: 'order.updated' });
      // Routed and waiting to mark: its UPDATE queues behind the test's lock.
      await waitFor(
        async () => {
          const { rows } = await app.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE %SET processed_at = now()%'`,
          );
          return rows[0]?.n === 1;
        },
        { timeoutMs: 30_000, message: 'the first worker waits to mark its first batch' },
      );
      first.child.kill('SIGKILL');
      expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
      // Killed mid-run: it routed a batch (the subscriber has it) and marked nothing.
      expect(await pendingRows()).toBe(TOTAL);
      const beforeSecond = delivered();

      // Its backend, unblocked, finds its client gone and rolls back: the batch is pending again.
      await blocker.query('ROLLBACK');
      await startMainProcess(worker);
      await waitFor(async () => (await pendingRows()) === 0, { timeoutMs: 120_000, intervalMs: 200, message: 'the second worker drains the outbox' });
      await waitFor(() => new Set(delivered().map((event) => keyOf(payloadOf(event)))).size === TOTAL, {
        timeoutMs: 60_000,
        intervalMs: 200,
        message: 'the subscriber receives every row',
      });
      // Received in one stream's order: the batch routed again precedes the later rows of its
      // partition, so it has arrived too.
      const events = delivered();

      // Every row routed once (marked, none set aside), each delivered with the id derived from it.
      const { rows } = await app.query<{ id: string; ms: string; payload: RowPayload; processed: boolean; dead_reason: string | null }>(
        'SELECT id::text AS id, floor(extract(epoch FROM created_at) * 1000)::bigint::text AS ms, payload, processed_at IS NOT NULL AS processed, dead_reason FROM event_outbox ORDER BY id',
      );
      expect(rows).toHaveLength(TOTAL);
      expect(rows.filter((row) => !row.processed || row.dead_reason !== null)).toEqual([]);
      const outboxId = await outboxIdOf(platform.url);
      const idOfRow = new Map(rows.map((row) => [keyOf(row.payload), outboxEventId(outboxId, row.id, row.ms)]));
      expect(events.filter((event) => event.id !== idOfRow.get(keyOf(payloadOf(event))))).toEqual([]);

      // What the killed worker routed arrived again, once, as the same events (same ids); nothing
      // else came twice: the rows delivered twice are the first ones delivered.
      const copiesOf = Map.groupBy(events, (event) => event.id);
      expect(copiesOf.size).toBe(TOTAL);
      for (const event of beforeSecond) expect(copiesOf.get(event.id), event.id).toHaveLength(2);
      const redelivered = [...copiesOf.values()].filter((copies) => copies.length > 1);
      expect(redelivered.map(([copy]) => copy!.id)).toEqual(events.slice(0, redelivered.length).map((event) => event.id));
      for (const copies of redelivered) {
        expect(copies.map(contentOf)).toEqual(copies.map(() => contentOf(copies[0]!)));
      }

      // De-duplicated by id, each entity's events arrive in insert order, every one of them.
      const firstCopies = [...copiesOf.values()].map(([copy]) => payloadOf(copy!));
      const seqsOf = new Map([...Map.groupBy(firstCopies, (row) => row.entity)].map(([entity, copies]) => [entity, copies.map((row) => row.seq)]));
      const expected = new Map(range(0, ENTITIES - 1).map((k) => [`order:${k}`, range(0, PER_ENTITY - 1)]));
      expect(seqsOf).toEqual(expected);
    },
  );
});

/** The outbox's stable id, which the platform keeps for it and event ids derive from. */
async function outboxIdOf(platformUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: platformUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ outbox_id: string }>('SELECT outbox_id FROM outbox_sources');
    expect(rows).toHaveLength(1);
    return rows[0]!.outbox_id;
  } finally {
    await client.end();
  }
}
