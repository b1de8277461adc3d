/**
 * A new delivery the routing tap leased for the BullMQ worker of its own process, whose job could
 * not be added (Redis went away between the event and the add), against a real Postgres and a
 * Redis of the test's own that is killed. No job of it will come, so the worker must keep no copy
 * and the row must not stay held by the insert's lease (30 s here): the lease is given back, and a
 * job naming no lease — the reconciler's, once Redis is back — has it sent at once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { startBullmqDelivery } from '../../src/pipeline/webhooks/bullmq-delivery.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import type { DeliveryIntake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import { getDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createWebhookTap } from '../../src/pipeline/webhooks/webhook-tap.ts';
import { createDeliveryFixture, placedEvent } from '../helpers/delivery-fixture.ts';
import { recordingDeliverer } from '../helpers/recording-deliverer.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
/** The insert's lease and the worker's: far longer than the test may take. */
const LEASE_MS = 30_000;
/** Longer than the test may take: nothing is queued but by the test. */
const NEVER_MS = 600_000;

describe('a new delivery handed to the BullMQ worker whose job could not be added', () => {
  it('is not held by the insert’s lease: a job naming none sends it once Redis is back', { timeout: 60_000 }, async () => {
    // Registered first: disposed last, once the worker and the rest are closed.
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const { db } = fixture;
    const redis = await startPrivateRedis();
    const prefix = uniquePrefix();
    const scheduler = createBullmqScheduler({ redisUrl: redis.url, prefix, logger });
    onTestFinished(() => scheduler.close());
    const { deliverer, handed, handedOver } = recordingDeliverer(db);
    const worker = startBullmqDelivery({
      redisUrl: redis.url,
      prefix,
      db,
      deliverer,
      scheduler,
      concurrency: 4,
      leaseMs: LEASE_MS,
      maxConcurrencyOf: () => 10,
      reconcileMs: NEVER_MS,
      logger,
    });
    // Registered after the scheduler's: closed before it.
    onTestFinished(() => worker.close());
    const endpoints = await createEndpointCache({ db, refreshMs: NEVER_MS, logger });
    onTestFinished(() => endpoints.close());
    const statistics = createDeliveryStatistics({ db, logger });
    onTestFinished(() => statistics.close());
    // The worker's intake, watched: what it withdraws is what the insert had leased for it.
    const intake = scheduler.intake();
    expect(intake).toBeDefined();
    const withdrawn: string[] = [];
    const watched: DeliveryIntake = {
      ...intake!,
      unscheduled(heads) {
        const taken = intake!.unscheduled(heads);
        withdrawn.push(...taken.map((delivery) => delivery.id));
        return taken;
      },
    };
    const tap = createWebhookTap({ db, endpoints, scheduler: { ...scheduler, intake: () => watched }, statistics, logger, maxBodyBytes: 65_536 });

    // The queue answers; then Redis dies before the event's job is added.
    expect(await scheduler.waiting()).toBe(0);
    await redis.stop('crash');
    await tap.deliver([placedEvent('evt_unqueued')]);

    const { rows } = await db.query<{ id: string }>(`SELECT id::text AS id FROM webhook_deliveries WHERE event_id = 'evt_unqueued'`);
    expect(rows).toHaveLength(1);
    const stored = await getDelivery(db, rows[0]!.id);
    // The insert leased it for this process's worker, which no longer keeps it; stored, due, and
    // held by no lease.
    expect(withdrawn).toEqual([stored!.id]);
    expect(stored?.state).toBe('pending');
    expect(stored?.lease).toBeNull();
    expect(handed).toEqual([]);

    // Redis back, the reconciler's job names the head without a lease: the row is free, the claim takes it.
    await redis.start();
    await waitFor(
      async () => {
        try {
          await scheduler.schedule([{ id: stored!.id, endpointId: stored!.endpointId }]);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, message: 'the job could not be added once Redis was back' },
    );
    await handedOver(1);
    expect(handed.map((entry) => entry.delivery.id)).toEqual([stored!.id]);
    await handed[0]!.finish();
    expect((await getDelivery(db, stored!.id))?.state).toBe('delivered');
  });
});
