/**
 * An attempt that fails in the worker itself (Redis or Postgres away: a Redis restart failed every
 * attempt under way with "Stream isn't writeable") heals itself — its lease runs out and it is
 * attempted again — so both delivery workers log such an outage at `warn` once, then its count when
 * an attempt ends normally again; never an `error` line per delivery. Real Postgres (and Redis for
 * BullMQ), with a deliverer that throws for the deliveries of the failing lanes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { startBullmqDelivery } from '../../src/pipeline/webhooks/bullmq-delivery.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { createLocalWake, type DeliveryScheduler } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { startEmbeddedDelivery, type DeliveryWorker } from '../../src/pipeline/webhooks/embedded-delivery.ts';
import type { WebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { deferred } from '../helpers/wait-for.ts';
import { openWebhookQueue } from '../helpers/webhook-queue.ts';

let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

const FAILING = 5;
const FAILED = 'webhook attempt failed; the delivery is retried when its lease ends';

describe.each(['embedded', 'bullmq'] as const)('the %s worker’s log of attempts that fail in the worker', (kind) => {
  it('logs an outage at warn once, and its count when an attempt ends normally again', { timeout: 30_000 }, async () => {
    const sink = captureLogs();
    const logger = createLogger({ level: 'debug', destination: sink });
    const allFailed = deferred();
    const succeeded = deferred();
    let failures = 0;
    const deliverer: WebhookDeliverer = {
      deliver(delivery, onSent) {
        onSent?.();
        if (delivery.lane.startsWith('fail')) {
          failures += 1;
          if (failures === FAILING) allFailed.resolve();
          return Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false"));
        }
        succeeded.resolve();
        return Promise.resolve({});
      },
    };
    let scheduler: DeliveryScheduler;
    let worker: DeliveryWorker;
    if (kind === 'embedded') {
      const wake = createLocalWake();
      scheduler = wake;
      worker = startEmbeddedDelivery({ db: fixture.db, deliverer, wake, concurrency: 10, leaseMs: 30_000, maxConcurrencyOf: () => 10, logger });
    } else {
      const prefix = uniquePrefix();
      openWebhookQueue(prefix);
      const queue = createBullmqScheduler({ redisUrl: testRedisUrl(), prefix, logger });
      scheduler = queue;
      const bullmq = startBullmqDelivery({ redisUrl: testRedisUrl(), prefix, db: fixture.db, deliverer, scheduler: queue, concurrency: 10, leaseMs: 30_000, maxConcurrencyOf: () => 10, logger });
      worker = { close: async () => (await bullmq.close(), await queue.close()) };
    }
    try {
      const failing = await storeDeliveries(fixture.db, Array.from({ length: FAILING }, (_, n) => fixture.delivery(`fail-${kind}-${n}`)));
      await scheduler.schedule(failing.heads);
      await allFailed.promise;
      const ok = await storeDeliveries(fixture.db, [fixture.delivery(`ok-${kind}`)]);
      await scheduler.schedule(ok.heads);
      await succeeded.promise;
    } finally {
      await worker.close();
    }
    const lines = sink.lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('webhook attempt'));
    // The first failure at warn (what failed, and that the rest are counted), the others at debug,
    // and the outage's end at warn with its count; no error line.
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    expect(lines.filter((line) => line.level === 40 && line.msg.startsWith(FAILED))).toMatchObject([{ err: { message: expect.stringContaining("Stream isn't writeable") as unknown } }]);
    expect(lines.filter((line) => line.level === 20 && line.msg === FAILED)).toHaveLength(FAILING - 1);
    expect(lines.filter((line) => line.level === 40 && line.msg.startsWith('webhook attempts end normally again'))).toMatchObject([{ failures: FAILING }]);
  });
});
