/**
 * The BullMQ worker's reconciler against a real Postgres and Redis, with a deliverer that only
 * records what it is handed (a pure fake): a lane head whose job was never added (Redis away as it
 * was stored, or its data lost) is queued by the reconciler's look at the table — also when more
 * heads than one page of that look are parked in the worker ahead of it (due earlier, unleased,
 * waiting for their endpoint's one place), which the look reads on past. The look sees the whole
 * table: the test has a database of its own.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { startBullmqDelivery } from '../../src/pipeline/webhooks/bullmq-delivery.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { freePort } from '../helpers/free-port.ts';
import { recordingDeliverer } from '../helpers/recording-deliverer.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';
import { openWebhookQueue } from '../helpers/webhook-queue.ts';

const logger = createLogger({ level: 'silent' });

describe('the BullMQ reconciler', () => {
  it('queues a head that has no job though more heads than a page of its look are parked ahead of it', { timeout: 60_000 }, async () => {
    // Registered first, disposed last: after the worker, the scheduler and the queue.
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const prefix = uniquePrefix();
    const { drained } = openWebhookQueue(prefix);
    const scheduler = createBullmqScheduler({ redisUrl: testRedisUrl(), prefix, logger });
    onTestFinished(() => scheduler.close());
    const recording = recordingDeliverer(fixture.db);
    const { handed, handedOver } = recording;
    // One place per endpoint, a look of two heads a page, every 100 ms.
    const worker = startBullmqDelivery({
      redisUrl: testRedisUrl(),
      prefix,
      db: fixture.db,
      deliverer: recording.deliverer,
      scheduler,
      concurrency: 4,
      leaseMs: 30_000,
      maxConcurrencyOf: () => 1,
      reconcileMs: 100,
      reconcilePage: 2,
      logger,
    });
    onTestFinished(() => worker.close());

    // Four heads of the fixture's endpoint, each in a lane of its own and queued: the first is
    // attempted (and hangs), the three others are parked — unleased, due, the oldest due of all.
    const { heads: busy } = await storeDeliveries(fixture.db, ['busy-1', 'busy-2', 'busy-3', 'busy-4'].map((lane) => fixture.delivery(lane)));
    await scheduler.schedule(busy);
    await handedOver(1);
    await waitFor(drained, { timeoutMs: 10_000, message: 'the busy endpoint’s jobs consumed (one attempted, three parked)' });
    expect(handed).toHaveLength(1);

    // Another endpoint's head, stored after them and never queued.
    const other = await fixture.endpoint('reconciled');
    const {
      heads: [lost],
    } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('lost'), endpointId: other }]);
    await waitFor(() => handed.length >= 2, { timeoutMs: 20_000, message: 'the head with no job queued by the reconciler and attempted' });
    expect(handed[1]!.delivery.id).toBe(lost!.id);

    // The rest in turn, each place freed by the one before: five attempts in all, none twice.
    for (let n = 0; n < 5; n += 1) {
      await handedOver(n + 1);
      await handed[n]!.finish();
    }
    expect(new Set(handed.map((entry) => entry.delivery.id))).toEqual(new Set([...busy.map((head) => head.id), lost!.id]));
  });

  // BullMQ waits for its connection to be ready, for ever while Redis is away: shutdown must not.
  // And it reports every failed reconnect: the outage is logged once.
  it('closes while Redis is unreachable and a reconcile pass waits for it, having logged the outage once', { timeout: 60_000 }, async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) } });
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const unreachable = `redis://127.0.0.1:${await freePort()}`;
    const prefix = uniquePrefix();
    const queue = createBullmqScheduler({ redisUrl: unreachable, prefix, logger });
    const asked = deferred<void>();
    const scheduler = {
      ...queue,
      waiting: () => {
        asked.resolve();
        return queue.waiting();
      },
    };
    const worker = startBullmqDelivery({
      redisUrl: unreachable,
      prefix,
      db: fixture.db,
      deliverer: recordingDeliverer(fixture.db).deliverer,
      scheduler,
      concurrency: 1,
      leaseMs: 30_000,
      maxConcurrencyOf: () => 1,
      reconcileMs: 50,
      logger,
    });
    await asked.promise;
    const reports = (what: string) => lines.filter((line) => line.msg.startsWith(what));
    await waitFor(() => reports('webhook worker error').length >= 3 && reports('webhook queue error').length >= 3, { timeoutMs: 20_000, message: 'several errors of the outage' });
    for (const what of ['webhook worker error', 'webhook queue error']) expect(reports(what).filter((line) => line.level >= 40)).toHaveLength(1);
    await expect(worker.close()).resolves.toBeUndefined();
    await expect(queue.close()).resolves.toBeUndefined();
  });
});
