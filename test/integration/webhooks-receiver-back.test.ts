/**
 * A receiver back after a failing streak gets the retries its deliveries were waiting out at once,
 * in both delivery workers (embedded loop, BullMQ), not when each comes due: the retry policy here
 * puts every retry an hour out, and the BullMQ reconciler's look is set beyond the test, so those
 * deliveries arrive at all only because the receiver's first success after the streak made them
 * due and had them scheduled. Real Postgres, Redis and receiver; the real deliverer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { startBullmqDelivery } from '../../src/pipeline/webhooks/bullmq-delivery.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { createLocalWake, type DeliveryScheduler } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { startEmbeddedDelivery, type DeliveryWorker } from '../../src/pipeline/webhooks/embedded-delivery.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createMemoryGate } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/pipeline/webhooks/retry-schedule.ts';
import { createWebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createWebhookHttpClient } from '../../src/pipeline/webhooks/webhook-http.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openWebhookQueue } from '../helpers/webhook-queue.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const logger = createLogger({ level: 'silent' });
const HOUR_MS = 3_600_000;
/** Every retry on the slow tail at once: an hour (and up to 10 % more) after a failure. */
const POLICY = { ...DEFAULT_RETRY_POLICY, fastAttempts: 0, tailIntervalMs: HOUR_MS };
/** Longer than the test takes: no look of the BullMQ reconciler comes within it. */
const NEVER_MS = 600_000;

let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

describe.each(['embedded', 'bullmq'] as const)('a receiver back after failing (%s worker)', (kind) => {
  it('gets the retries its deliveries wait out at once, not when each comes due', { timeout: 60_000 }, async () => {
    const { db } = fixture;
    const receiver = await startWebhookReceiver();
    let down = true;
    receiver.respond = () => (down ? 500 : 204);
    const endpoint = await insertEndpoint(db, { app: 'app', env: 'env', tenant: null, url: receiver.url, description: kind, events: ['*'], rateLimitPerSecond: null, maxConcurrency: 10, secret: newWebhookSecret() });
    const endpoints = await createEndpointCache({ db, refreshMs: 60_000, logger });
    const http = createWebhookHttpClient({ allowPrivateTargets: true });
    const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
    const deliverer = createWebhookDeliverer({ db, endpoints, http, gate: createMemoryGate(), router, policy: POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger });
    let scheduler: DeliveryScheduler;
    let worker: DeliveryWorker;
    if (kind === 'embedded') {
      const wake = createLocalWake();
      scheduler = wake;
      worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 10, leaseMs: 30_000, maxConcurrencyOf: () => 10, logger });
    } else {
      const prefix = uniquePrefix();
      openWebhookQueue(prefix);
      const queue = createBullmqScheduler({ redisUrl: testRedisUrl(), prefix, logger });
      scheduler = queue;
      const bullmq = startBullmqDelivery({ redisUrl: testRedisUrl(), prefix, db, deliverer, scheduler: queue, concurrency: 10, leaseMs: 30_000, maxConcurrencyOf: () => 10, reconcileMs: NEVER_MS, logger });
      worker = { close: async () => (await bullmq.close(), await queue.close()) };
    }
    const store = async (lane: string) => {
      const stored = await storeDeliveries(db, [{ ...fixture.delivery(`${kind}-${lane}`), endpointId: endpoint.id }]);
      await scheduler.schedule(stored.heads);
      return stored.inserted[0]!;
    };
    try {
      const waiting = [await store('w0'), await store('w1'), await store('w2')];
      await waitFor(async () => (await Promise.all(waiting.map((id) => getDelivery(db, id)))).every((delivery) => delivery?.attempts === 1), { timeoutMs: 10_000, message: 'the failures recorded' });

      // Back: a new delivery succeeds, ending the endpoint's failing streak.
      down = false;
      const back = await store('back');
      await waitFor(async () => (await Promise.all([...waiting, back].map((id) => getDelivery(db, id)))).every((delivery) => delivery?.state === 'delivered'), {
        timeoutMs: 15_000,
        message: 'the waiting retries delivered',
      });
    } finally {
      await worker.close();
      endpoints.close();
      await http.close();
    }

    type Attempt = { delivery_id: string; attempt: number; outcome: string; created_at: Date; next_attempt_at: Date | null };
    const { rows } = await db.query<Attempt>(
      `SELECT delivery_id::text, attempt, outcome, created_at, next_attempt_at FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY delivery_id, attempt`,
      [endpoint.id],
    );
    const recovery = rows.find((row) => row.outcome === 'delivered' && row.attempt === 1)!;
    expect(rows.filter((row) => row.outcome === 'delivered' && row.attempt === 1)).toHaveLength(1);
    for (const id of rows.filter((row) => row.attempt === 2).map((row) => row.delivery_id)) {
      const [failed, retried] = rows.filter((row) => row.delivery_id === id);
      // Set an hour out by the policy; attempted after the receiver's first success, long before that.
      expect(failed).toMatchObject({ attempt: 1, outcome: 'failed' });
      expect(failed!.next_attempt_at!.getTime() - failed!.created_at.getTime()).toBeGreaterThanOrEqual(HOUR_MS);
      expect(retried).toMatchObject({ attempt: 2, outcome: 'delivered' });
      expect(retried!.created_at.getTime()).toBeGreaterThanOrEqual(recovery.created_at.getTime());
      expect(retried!.created_at.getTime()).toBeLessThan(failed!.next_attempt_at!.getTime());
    }
    expect(rows.filter((row) => row.attempt === 2)).toHaveLength(3);
    expect(rows).toHaveLength(7);
  });
});
