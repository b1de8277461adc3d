/**
 * The deliverer on its own — a real Postgres, a real receiver over HTTP, the memory gate — for what
 * the end-to-end suites cannot arrange: the attempt's record failing once (Postgres away for a
 * moment) after the receiver had the request, the `endpoint.disabled` notice failing to route, and
 * a delivery due by another clock than the process's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, QueryOptions, Row } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { claimDeliveries, getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createMemoryGate } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/pipeline/webhooks/retry-schedule.ts';
import { createWebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createWebhookHttpClient } from '../../src/pipeline/webhooks/webhook-http.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const logger = createLogger({ level: 'silent' });
let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

/** An endpoint of the fixture's database with its URL at `url`. */
function endpointAt(url: string) {
  return insertEndpoint(fixture.db, { app: 'app', env: 'env', tenant: null, url, description: '', events: ['*'], rateLimitPerSecond: null, maxConcurrency: 10, secret: newWebhookSecret() });
}

describe('webhook deliverer', () => {
  it('records an attempt whose first record failed: the receiver’s answer is not lost', async () => {
    const receiver = await startWebhookReceiver();
    const endpoint = await insertEndpoint(fixture.db, {
      app: 'app',
      env: 'env',
      tenant: null,
      url: receiver.url,
      description: '',
      events: ['*'],
      rateLimitPerSecond: null,
      maxConcurrency: 10,
      secret: newWebhookSecret(),
    });
    // The real database, with the first record of an attempt failing.
    let failRecord = true;
    const flaky: Database = {
      ...fixture.db,
      query(sql, params, options) {
        if (options?.prepareAs === 'tributary_webhook_record_attempts' && failRecord) {
          failRecord = false;
          return Promise.reject(new Error('connection terminated unexpectedly'));
        }
        return fixture.db.query(sql, params, options);
      },
    };
    const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    const routed: unknown[] = [];
    const router = { route: (event: unknown) => (routed.push(event), Promise.resolve([])) } as unknown as EventRouter;
    const deliverer = createWebhookDeliverer({ db: flaky, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger });
    try {
      const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('record-retry'), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, inserted, 30_000);
      expect(await deliverer.deliver(delivery!)).toEqual({});
      expect(failRecord).toBe(false);
      expect(receiver.received).toHaveLength(1);
      expect(await getDelivery(fixture.db, inserted[0]!)).toMatchObject({ state: 'delivered', attempts: 1, lease: null });
      const { rows } = await fixture.db.query<{ outcome: string }>(`SELECT outcome FROM webhook_attempts WHERE delivery_id = $1::bigint`, [inserted[0]]);
      expect(rows).toEqual([{ outcome: 'delivered' }]);
      expect(routed).toEqual([]);
    } finally {
      endpoints.close();
      await http.close();
    }
  });

  it('names the lane’s next when a record committed but its answer was lost, and the try again finds it done and logs the attempt once', async () => {
    const receiver = await startWebhookReceiver();
    const endpoint = await endpointAt(receiver.url);
    // The real database; the first record runs, then its answer is lost (the connection dropped).
    let loseAnswer = true;
    const flaky: Database = {
      ...fixture.db,
      async query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
        const result = await fixture.db.query<R>(sql, params, options);
        if (options?.prepareAs === 'tributary_webhook_record_attempts' && loseAnswer) {
          loseAnswer = false;
          throw new Error('connection terminated unexpectedly');
        }
        return result;
      },
    };
    const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
    const deliverer = createWebhookDeliverer({ db: flaky, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger });
    try {
      const lane = { ...fixture.delivery('lost-answer'), endpointId: endpoint.id };
      const { inserted } = await storeDeliveries(fixture.db, [lane, { ...fixture.delivery('lost-answer'), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, [inserted[0]!], 30_000);
      expect(await deliverer.deliver(delivery!)).toEqual({ nextInLane: inserted[1] });
      expect(loseAnswer).toBe(false);
      expect(await getDelivery(fixture.db, inserted[0]!)).toMatchObject({ state: 'delivered', attempts: 1 });
      // The attempt is logged once: the try again found it was its own record, already made.
      const { rows } = await fixture.db.query<{ attempt: number; outcome: string }>(`SELECT attempt, outcome FROM webhook_attempts WHERE delivery_id = $1::bigint`, [inserted[0]]);
      expect(rows).toEqual([{ attempt: 1, outcome: 'delivered' }]);
    } finally {
      endpoints.close();
      await http.close();
    }
  });

  it('routes the endpoint.disabled notice of a 410 again when routing it failed', async () => {
    const receiver = await startWebhookReceiver();
    receiver.respond = () => 410;
    const endpoint = await endpointAt(receiver.url);
    const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    // The router fails twice (Redis away for a moment), then routes.
    const tries: { type: string; id: string }[] = [];
    const router = {
      route: (event: { type: string; id: string }) => (tries.push(event), tries.length <= 2 ? Promise.reject(new Error('Connection is closed.')) : Promise.resolve([])),
    } as unknown as EventRouter;
    const deliverer = createWebhookDeliverer({ db: fixture.db, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger });
    try {
      const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('gone'), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, inserted, 30_000);
      await deliverer.deliver(delivery!);
      expect(await getDelivery(fixture.db, inserted[0]!)).toMatchObject({ state: 'pending', attempts: 1, lastStatus: 410 });
      expect(tries).toHaveLength(3);
      expect(new Set(tries.map((event) => `${event.type} ${event.id}`)).size).toBe(1);
      expect(tries[0]!.type).toBe('endpoint.disabled');
    } finally {
      endpoints.close();
      await http.close();
    }
  });

  it('logs an endpoint cache that could not be refreshed after a 410 disabled the endpoint', async () => {
    const receiver = await startWebhookReceiver();
    receiver.respond = () => 410;
    const endpoint = await endpointAt(receiver.url);
    const cache = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
    // The cache's reload failing (Postgres away for a moment).
    const endpoints = { ...cache, refresh: () => Promise.reject(new Error('connection terminated unexpectedly')) };
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
    const sink = captureLogs();
    const logged = createLogger({ level: 'debug', destination: sink });
    const deliverer = createWebhookDeliverer({ db: fixture.db, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger: logged });
    try {
      const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('gone-unrefreshed'), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, inserted, 30_000);
      await deliverer.deliver(delivery!);
      expect(await getDelivery(fixture.db, inserted[0]!)).toMatchObject({ state: 'pending', attempts: 1, lastStatus: 410 });
      const line = sink.lines.find((entry) => entry.msg === 'endpoint cache not refreshed after disabling an endpoint; its next refresh sees it');
      expect(line).toMatchObject({ level: 40, endpoint: endpoint.id, err: { message: 'connection terminated unexpectedly' } });
    } finally {
      cache.close();
      await http.close();
    }
  });

  it('attempts a delivery due a moment ahead of its own clock (the database’s, a little ahead) and postpones one due later', async () => {
    const receiver = await startWebhookReceiver();
    const endpoint = await endpointAt(receiver.url);
    const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
    const deliverer = createWebhookDeliverer({ db: fixture.db, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger });
    try {
      const { inserted } = await storeDeliveries(fixture.db, [
        { ...fixture.delivery('skewed'), endpointId: endpoint.id },
        { ...fixture.delivery('later'), endpointId: endpoint.id },
      ]);
      const claimed = await claimDeliveries(fixture.db, inserted, 30_000);
      const [skewed, later] = inserted.map((id) => claimed.find((delivery) => delivery.id === id));
      // As the claim would read them from a database whose clock is 200 ms ahead, and of a retry due in a minute.
      const inAMinute = new Date(Date.now() + 60_000);
      expect(await deliverer.deliver({ ...skewed!, nextAttemptAt: new Date(Date.now() + 200) })).toEqual({});
      expect(await deliverer.deliver({ ...later!, nextAttemptAt: inAMinute })).toEqual({ retryAt: inAMinute });
      expect(receiver.received.map((request) => request.headers['webhook-id'])).toEqual([skewed!.eventId]);
      expect(await getDelivery(fixture.db, inserted[0]!)).toMatchObject({ state: 'delivered', attempts: 1 });
      expect(await getDelivery(fixture.db, inserted[1]!)).toMatchObject({ state: 'pending', attempts: 0, lease: null });
    } finally {
      endpoints.close();
      await http.close();
    }
  });

  it('begins a failure streak again that another process’s success ended, once its own was noted 10 s ago', async () => {
    const receiver = await startWebhookReceiver();
    let status = 500;
    receiver.respond = () => status;
    const endpoint = await endpointAt(receiver.url);
    const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
    // Two processes' deliverers; the first on a clock the test moves.
    let now = 0;
    const deliverer = (clock: () => number) =>
      createWebhookDeliverer({ db: fixture.db, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger, now: clock });
    const [failing, other] = [deliverer(() => now), deliverer(() => 0)];
    const attempt = async (by: typeof failing, lane: string) => {
      const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery(lane), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, inserted, 30_000);
      await by.deliver(delivery!);
    };
    const failingSince = async () => (await fixture.db.query<{ failing_since: Date | null }>('SELECT failing_since FROM webhook_endpoints WHERE id = $1', [endpoint.id])).rows[0]?.failing_since;
    try {
      await attempt(failing, 'streak-1');
      expect(await failingSince()).toBeInstanceOf(Date);
      status = 204;
      await attempt(other, 'streak-ended');
      expect(await failingSince()).toBeNull();
      // Failing again here: within 10 s of its own note the row is not written; after, the streak begins again.
      status = 500;
      now += 9_999;
      await attempt(failing, 'streak-2');
      expect(await failingSince()).toBeNull();
      now += 1;
      await attempt(failing, 'streak-3');
      expect(await failingSince()).toBeInstanceOf(Date);
    } finally {
      endpoints.close();
      await http.close();
    }
  });
});
