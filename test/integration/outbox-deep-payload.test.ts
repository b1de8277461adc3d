/**
 * A payload nested deeper than JSON.stringify can serialize — valid jsonb of a few KB — is set
 * aside as dead, with its reason, and the rows around it are routed: in POLL mode (the poller's
 * batch) and in WAL mode (the CDC reader's chunk). Before, its conversion threw: the batch rolled
 * back at every pass, or the CDC session failed at every chunk, the whole outbox held up.
 */
import { describe, expect, it } from 'vitest';
import { MAX_PAYLOAD_DEPTH } from '../../src/pipeline/outbox/outbox-row.ts';
import { gql } from '../helpers/cdc.ts';
import { eventOf } from '../helpers/events.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { startOutboxPoller } from '../helpers/outbox-poller.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const DEEP_REASON = `payload nests over ${MAX_PAYLOAD_DEPTH} levels deep`;

/** `{"a":[[…]]}` nested `levels` levels deep, the object itself level 1. */
const nested = (levels: number) => `{"a":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;

/** Deep enough that JSON.stringify throws a RangeError on it here, and not too deep for Postgres (its stack depth limit). */
const TOO_DEEP = 5_000;

const INSERT = `INSERT INTO event_outbox (topic, event_type, payload, entity) VALUES ('orders', 'order.created', $1::jsonb, $2)`;

describe('an outbox row nested too deeply', () => {
  it('is what JSON.stringify cannot serialize', () => {
    expect(() => JSON.stringify(JSON.parse(nested(TOO_DEEP)))).toThrow(RangeError);
  });

  it('is set aside as dead in POLL mode, and the rows around it are routed', async () => {
    const { pool, poller, appended } = await startOutboxPoller('obx-deep');

    await pool.query(INSERT, ['{"n":1}', 'order:1']);
    await pool.query(INSERT, [nested(TOO_DEEP), 'order:2']);
    // Exactly at the limit: routed, as `publish` would take it.
    await pool.query(INSERT, [nested(MAX_PAYLOAD_DEPTH), 'order:3']);
    await pool.query(INSERT, [nested(MAX_PAYLOAD_DEPTH + 1), 'order:4']);

    await expect(poller.pollOnce()).resolves.toBe(4);
    const { rows } = await pool.query('SELECT entity, processed_at IS NOT NULL AS processed, dead_reason FROM event_outbox ORDER BY id');
    expect(rows).toEqual([
      { entity: 'order:1', processed: true, dead_reason: null },
      { entity: 'order:2', processed: true, dead_reason: DEEP_REASON },
      { entity: 'order:3', processed: true, dead_reason: null },
      { entity: 'order:4', processed: true, dead_reason: DEEP_REASON },
    ]);
    expect(appended.map((event) => event.metadata.entity)).toEqual(['order:1', 'order:3']);
  });

  it('is set aside as dead in WAL mode, and the rows around it are routed', { timeout: 120_000 }, async () => {
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = await gql(server, admin, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: WAL) { mode } }', { url: appDb.url });
    expect(set.errors).toBeUndefined();
    expect(set.data).toEqual({ setOutboxSource: { mode: 'WAL' } });
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: undefined, permissions: ['orders.read'] }));
    const before = server.stats().subscribers;
    client.send({ id: 'o', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id topic source type payload metadata { table operation } } }' } });
    await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });

    // One transaction: the deep row shares its chunk with the others.
    const writer = await app.connect();
    await writer.query('BEGIN');
    await writer.query(INSERT, ['{"n":1}', 'order:1']);
    await writer.query(INSERT, [nested(TOO_DEEP), 'order:2']);
    await writer.query(INSERT, ['{"n":3}', 'order:3']);
    await writer.query('COMMIT');
    writer.release();

    const first = eventOf(await client.nextMessage());
    const second = eventOf(await client.nextMessage());
    expect([first.payload, second.payload]).toEqual([{ n: 1 }, { n: 3 }]);
    // Routed rows are deleted; the dead one stays, with its reason.
    await waitFor(async () => (await app.query('SELECT 1 FROM event_outbox WHERE dead_reason IS NULL')).rowCount === 0, { timeoutMs: 20_000, message: 'routed rows deleted' });
    const { rows } = await app.query('SELECT entity, dead_reason FROM event_outbox');
    expect(rows).toEqual([{ entity: 'order:2', dead_reason: DEEP_REASON }]);
  });
});
