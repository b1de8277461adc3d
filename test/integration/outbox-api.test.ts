import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { gql } from '../helpers/cdc.ts';
import { eventOf } from '../helpers/events.ts';
import { createTestDatabase, startPrivatePostgres, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

/*
 * The outbox end to end, as an application uses it: the admin points the environment at its
 * database (creating the table), a service INSERTs events in its own transactions, subscribers of
 * the topic receive them, and outboxStatus shows what the workers report.
 */

const STATUS = '{ outboxStatus { table requestedMode mode pending dead lastError reportedAt } }';


describe('the outbox API', () => {
  it.each(['POLL', 'WAL'])('creates the table, routes committed rows to the tenant subscriber, sets a poison row aside and reports it (%s mode)', async (mode) => {
    const appDb = await createTestDatabase();
    const app = openTestPool(appDb.url);
    // A WAL source is the CDC reader's: picked up within its reload interval (a POLL one within the pollers', 2 s here), and reported as often.
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, OUTBOX_POLL_INTERVAL_MS: '50', CDC_RELOAD_INTERVAL_MS: '200', OUTBOX_REPORT_INTERVAL_MS: '2000' });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });

    const set = await gql(
      server,
      admin,
      'mutation($url: String!, $mode: OutboxMode) { setOutboxSource(databaseUrl: $url, createTable: true, mode: $mode) { host table requestedMode mode } }',
      { url: appDb.url, mode },
    );
    expect(set.errors).toBeUndefined();
    // The host with its port, as setCdcSource shows one URL.
    expect(set.data?.['setOutboxSource']).toMatchObject({ host: new URL(appDb.url).host, table: 'event_outbox', requestedMode: mode, mode });

    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: 'a', permissions: ['orders.read'] }));
    client.send({ id: 'e', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders.created") { id type payload metadata { table operation } } }' } });
    await waitFor(() => server.stats().subscribers === 1, { message: 'subscription dispatched' });

    // A rolled-back transaction leaves nothing; a committed one is routed, in the row's tenant only.
    const rolledBack = await app.connect();
    await rolledBack.query('BEGIN');
    await enqueueOutboxEvent(rolledBack, { topic: 'orders.created', type: 'order.created', payload: { n: 0 }, tenant: 'a', entity: 'order:0' });
    await rolledBack.query('ROLLBACK');
    rolledBack.release();
    await enqueueOutboxEvent(app, { topic: 'orders.created', type: 'order.created', payload: { n: 1 }, tenant: 'b', entity: 'order:1' });
    await app.query(`INSERT INTO event_outbox (topic, event_type, payload, tenant, entity) VALUES ('orders.created', 'order.created', '[1, 2]', 'a', 'order:2')`);
    await enqueueOutboxEvent(app, { topic: 'orders.created', type: 'order.created', payload: { n: 2 }, tenant: 'a', entity: 'order:2', table: 'orders', operation: 'insert' });

    // Tenant b's row and the poison row never reach tenant a; the row after the poison one does.
    expect(eventOf(await client.nextMessage())).toMatchObject({ type: 'order.created', payload: { n: 2 }, metadata: { table: 'orders', operation: 'insert' } });

    await waitFor(
      async () => {
        const status = (await gql(server, admin, STATUS)).data?.['outboxStatus'] as Record<string, unknown> | null;
        return status?.['reportedAt'] != null && status['pending'] === 0 && status['dead'] === 1 ? status : undefined;
      },
      { timeoutMs: 20_000, message: 'the reader reports the outbox drained with one dead row' },
    );
    const status = (await gql(server, admin, STATUS)).data?.['outboxStatus'];
    expect(status).toMatchObject({ table: 'event_outbox', mode, pending: 0, dead: 1, lastError: null });
    const { rows } = await app.query<{ dead_reason: string | null }>('SELECT dead_reason FROM event_outbox WHERE dead_reason IS NOT NULL');
    expect(rows).toEqual([{ dead_reason: expect.stringContaining('JSON object') as unknown }]);

    // Nothing else arrived for tenant a: a marker of tenant a is the next event.
    await enqueueOutboxEvent(app, { topic: 'orders.created', type: 'marker', payload: { n: 3 }, tenant: 'a' });
    expect(eventOf(await client.nextMessage())).toMatchObject({ type: 'marker' });

    expect((await gql(server, admin, 'mutation { removeOutboxSource }')).data).toEqual({ removeOutboxSource: true });
    expect((await gql(server, admin, STATUS)).data).toEqual({ outboxStatus: null });
  });

  it.each(['POLL', 'WAL'])(
    'sets a row aside as dead when its entity or tenant is too long for a webhook lane, routes long URL and CJK entities, and the rows after it (%s mode)',
    async (mode) => {
      const appDb = await createTestDatabase();
      const app = openTestPool(appDb.url);
      const env = { OUTBOX_POLL_INTERVAL_MS: '50', CDC_RELOAD_INTERVAL_MS: '200', OUTBOX_REPORT_INTERVAL_MS: '2000', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };
      const server = await startTestServer({ JWT_SECRET: TEST_SECRET, ...env });
      const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
      const receiver = await startWebhookReceiver();
      // An endpoint selecting the topic: each routed row gets a delivery whose lane is `tenant|entity`, an indexed column.
      const endpoint = await gql(server, admin, 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }', {
        input: { url: receiver.url, events: ['orders.*'] },
      });
      expect(endpoint.errors).toBeUndefined();
      const set = await gql(server, admin, 'mutation($url: String!, $mode: OutboxMode) { setOutboxSource(databaseUrl: $url, createTable: true, mode: $mode) { mode } }', {
        url: appDb.url,
        mode,
      });
      expect(set.errors).toBeUndefined();

      // Random text: Postgres cannot compress it under the btree limit (~2.7 kB) as it would a repeated character.
      const long = randomBytes(3_000).toString('base64');
      const event = { topic: 'orders.created', type: 'order.created', payload: {} };
      // Raw INSERTs: the SDK refuses such rows before writing them (InvalidOutboxEventError); another writer's can still arrive.
      const insert = 'INSERT INTO event_outbox (topic, event_type, payload, tenant, entity) VALUES ($1, $2, $3, $4, $5)';
      await app.query(insert, [event.topic, event.type, '{}', 'a', long]);
      await app.query(insert, [event.topic, event.type, '{}', long, 'order:1']);
      // Under 1,024 bytes: a 250-character URL key (ASCII) and 100 CJK characters (300 bytes) route.
      const url = `https://example.com/${'p'.repeat(230)}`;
      const cjk = '注文'.repeat(50);
      expect([url.length, cjk.length]).toEqual([250, 100]);
      await enqueueOutboxEvent(app, { ...event, payload: { url: true }, tenant: 'a', entity: url });
      await enqueueOutboxEvent(app, { ...event, payload: { cjk: true }, tenant: 'a', entity: cjk });
      const after = await enqueueOutboxEvent(app, { ...event, payload: { after: true }, tenant: 'a', entity: 'order:2' });

      // Sources are picked up within 2 s (OUTBOX_REPORT_INTERVAL_MS); a stalled outbox never gets this far. Each entity is its own lane: any order.
      await waitFor(() => receiver.received.length >= 3, { timeoutMs: 20_000, message: 'the long-key rows and the row after the too-long ones are delivered' });
      const delivered = receiver.received.map((request) => request.json);
      expect(delivered).toHaveLength(3);
      expect(delivered).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ entity: url, data: { url: true } }),
          expect.objectContaining({ entity: cjk, data: { cjk: true } }),
          expect.objectContaining({ entity: 'order:2', data: { after: true } }),
        ]),
      );
      // Marked in the batch's transaction (POLL) or by the reader's clean-up after routing (WAL: the routed row is deleted).
      const table = async () => (await app.query<{ id: string; dead_reason: string | null }>('SELECT id::text AS id, dead_reason FROM event_outbox ORDER BY id')).rows;
      const dead = ['entity over 1024 bytes', 'tenant over 200 characters'];
      const expected = mode === 'POLL' ? [...dead, null, null, null] : dead;
      await waitFor(async () => JSON.stringify((await table()).map((row) => row.dead_reason)) === JSON.stringify(expected), {
        message: 'the two rows are set aside as dead',
      });
      if (mode === 'POLL') expect((await table())[4]?.id).toBe(after);
    },
  );

  it('refuses a missing table without createTable, a bad table name and a non-admin caller, with stable codes', async () => {
    const appDb = await createTestDatabase();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const setSource = (token: string, table: string) =>
      gql(server, token, 'mutation($url: String!, $t: String) { setOutboxSource(databaseUrl: $url, table: $t) { table } }', { url: appDb.url, t: table });

    const missing = await setSource(admin, 'event_outbox');
    expect(missing.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'table' } });
    expect(missing.errors?.[0]?.message).toContain('createTable');
    expect((await setSource(admin, 'Robert"; DROP TABLE x')).errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'table' } });
    expect((await setSource(await signHs256({}), 'event_outbox')).errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect((await gql(server, admin, STATUS)).data).toEqual({ outboxStatus: null });
  });

  it('refuses the outbox operations to an admin token limited to one tenant: the outbox is the whole environment’s', async () => {
    const appDb = await createTestDatabase();
    const otherDb = await createTestDatabase();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const tenantAdmin = await signHs256({ roles: ['admin'], tenant: 'a', permissions: [] });
    const set = 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { database } }';
    expect((await gql(server, admin, set, { url: appDb.url })).data).toEqual({ setOutboxSource: { database: appDb.name } });

    const operations: [string, Record<string, unknown>][] = [
      [set, { url: otherDb.url }],
      ['mutation { removeOutboxSource }', {}],
      ['{ outboxStatus { host database table } }', {}],
    ];
    for (const [query, variables] of operations) {
      const error = (await gql(server, tenantAdmin, query, variables)).errors?.[0];
      expect(error?.extensions?.['code'], query).toBe('FORBIDDEN');
      expect(error?.message, query).toContain('admin token without a tenant');
    }
    // Still the environment's outbox, as its admin set it.
    expect((await gql(server, admin, '{ outboxStatus { database table } }')).data).toEqual({ outboxStatus: { database: appDb.name, table: 'event_outbox' } });
  });

  it('keeps reporting the last figures with the error while the outbox database is down, and recovers', { timeout: 90_000 }, async () => {
    const postgres = await startPrivatePostgres();
    // The test stops the server under it.
    const app = openTestPool(postgres.url, { max: 1 });
    // The figures (and the outage) are reported every 2 s instead of every 5 s.
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, OUTBOX_POLL_INTERVAL_MS: '50', OUTBOX_REPORT_INTERVAL_MS: '2000' });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { table } }';
    expect((await gql(server, admin, set, { url: postgres.url })).errors).toBeUndefined();
    await app.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('orders.created', 'order.created', 'null')`);
    const status = async () => (await gql(server, admin, STATUS)).data?.['outboxStatus'] as Record<string, unknown>;
    await waitFor(async () => (await status())['dead'] === 1, { timeoutMs: 20_000, message: 'the dead row is reported' });

    await postgres.stop();
    await waitFor(async () => (await status())['lastError'] !== null, { timeoutMs: 30_000, message: 'the outage is reported' });
    // The figures last measured stay (not zeros that would claim a drained outbox).
    expect(await status()).toMatchObject({ pending: 0, dead: 1, mode: 'POLL' });

    await postgres.start();
    await app.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('bad topic', 'x', '{}')`);
    await waitFor(async () => {
      const now = await status();
      return now['lastError'] === null && now['dead'] === 2;
    }, { timeoutMs: 30_000, message: 'the workers poll again after the restart' });
  });
});
