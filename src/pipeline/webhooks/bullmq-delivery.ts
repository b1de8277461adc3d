/**
 * Webhook delivery through BullMQ (with Redis): a job in the `webhook-delivery` queue per lane
 * head, keyed by the delivery's id (adding it twice is a no-op), delayed until the delivery is
 * due. Any number of worker processes work the queue; a `server` process only adds jobs.
 *
 * The deliveries stay in Postgres, the record BullMQ cannot lose: a job lost with Redis's data, or
 * not added because Redis was away, is added again by the reconciler, which looks for due lane
 * heads no one holds. A worker killed mid-attempt leaves its job stalled (BullMQ hands it out again)
 * and its lease on the delivery running out: the delivery is attempted again, with the same
 * `webhook-id`.
 */
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { DeliveryScheduler } from './delivery-scheduler.ts';
import { createGroupCommit } from '../coordination/group-commit.ts';
import { claimDeliveries, dueHeads, type Delivery } from './delivery-store.ts';
import type { WebhookDeliverer } from './webhook-deliverer.ts';
import type { DeliveryWorker } from './embedded-delivery.ts';

export const WEBHOOK_QUEUE = 'webhook-delivery';

/** How long a lane head may be due and unheld before the reconciler queues it (again), in ms. */
const RECONCILE_GRACE_MS = 2_000;

interface DeliveryJob {
  readonly deliveryId: string;
}

const jobIdOf = (deliveryId: string) => `delivery-${deliveryId}`;

export interface BullmqScheduler extends DeliveryScheduler {
  /** Adds the jobs of these deliveries, each delayed until `dueAt` (now when absent). */
  scheduleAt(deliveries: readonly { id: string; dueAt?: Date }[]): Promise<void>;
}

/** BullMQ's own connections (named, for CLIENT LIST): a command one that fails fast for the producer, a blocking one for the worker. */
function connect(redisUrl: string, blocking: boolean): Redis {
  return new Redis(
    redisUrl,
    blocking
      ? { maxRetriesPerRequest: null, connectionName: 'tributary-bullmq-worker' }
      : { maxRetriesPerRequest: 2, enableOfflineQueue: false, connectionName: 'tributary-bullmq' },
  );
}

/** Closing must not hang on a Redis that does not answer: after this, connections are cut, in ms. */
const CLOSE_TIMEOUT_MS = 5_000;

async function closeWithin(close: Promise<void>, connection: Redis): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([close.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))]);
  clearTimeout(timer);
  connection.disconnect();
}

export function createBullmqScheduler(options: { readonly redisUrl: string; readonly prefix: string; readonly logger: Logger }): BullmqScheduler {
  const connection = connect(options.redisUrl, false);
  connection.on('error', (error) => options.logger.debug({ err: error }, 'webhook queue connection error'));
  const queue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection, prefix: options.prefix });
  queue.on('error', (error) => options.logger.warn({ err: error }, 'webhook queue error'));
  const scheduleAt: BullmqScheduler['scheduleAt'] = async (deliveries) => {
    if (deliveries.length === 0) return;
    const now = Date.now();
    await queue.addBulk(
      deliveries.map(({ id, dueAt }) => ({
        name: 'deliver',
        data: { deliveryId: id },
        opts: { jobId: jobIdOf(id), delay: dueAt === undefined ? 0 : Math.max(0, dueAt.getTime() - now), removeOnComplete: true, removeOnFail: true },
      })),
    );
  };
  return {
    scheduleAt,
    schedule: (ids) => scheduleAt(ids.map((id) => ({ id }))),
    async scheduleNow(ids) {
      // A job waiting for a later attempt is moved up; adding it again would be a no-op.
      for (const id of ids) {
        const job = await queue.getJob(jobIdOf(id));
        if (job && (await job.isDelayed())) await job.promote();
      }
      await scheduleAt(ids.map((id) => ({ id })));
    },
    close: () => closeWithin(queue.close(), connection),
  };
}

export interface BullmqDeliveryOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly db: Database;
  readonly deliverer: WebhookDeliverer;
  readonly scheduler: BullmqScheduler;
  /** Jobs worked at once by this process. */
  readonly concurrency: number;
  /** How long a leased delivery is held, in ms. */
  readonly leaseMs: number;
  /** How often due lane heads without a job are looked for, in ms. @default 5000 */
  readonly reconcileMs?: number;
  readonly logger: Logger;
}

export function startBullmqDelivery(options: BullmqDeliveryOptions): DeliveryWorker {
  const { db, deliverer, scheduler, logger } = options;
  const connection = connect(options.redisUrl, true);
  connection.on('error', (error) => logger.debug({ err: error }, 'webhook worker connection error'));

  // Jobs taken together are claimed together: one statement for the deliveries of many jobs.
  const claims = createGroupCommit<string, Delivery | undefined>({
    async write(ids) {
      const leased = new Map((await claimDeliveries(db, ids, options.leaseMs)).map((delivery) => [delivery.id, delivery]));
      // Two jobs for one delivery in a batch: only the first attempts it.
      return ids.map((id) => {
        const delivery = leased.get(id);
        leased.delete(id);
        return delivery;
      });
    },
    maxBatch: Math.max(1, options.concurrency),
  });

  const work = async (job: Job<DeliveryJob>, token?: string) => {
    const delivery = await claims.submit(job.data.deliveryId);
    // Finished already, held by another worker, or not its lane's head yet: nothing to do here.
    if (!delivery) return;
    const outcome = await deliverer.deliver(delivery);
    if (outcome.nextInLane !== undefined) await scheduler.schedule([outcome.nextInLane]);
    if (outcome.retryAt !== undefined) {
      await job.moveToDelayed(outcome.retryAt.getTime(), token);
      throw new DelayedError();
    }
  };
  const worker = new Worker<DeliveryJob>(WEBHOOK_QUEUE, work, {
    connection,
    prefix: options.prefix,
    concurrency: options.concurrency,
    // A job whose worker died is handed out again after this (its delivery's lease decides whether it is attempted).
    lockDuration: Math.min(options.leaseMs, 30_000),
    stalledInterval: Math.min(options.leaseMs, 30_000),
  });
  worker.on('error', (error) => logger.warn({ err: error }, 'webhook worker error'));
  worker.on('failed', (job, error) => logger.warn({ err: error, delivery: job?.data.deliveryId }, 'webhook job failed; the reconciler schedules it again'));

  const reconcile = async () => {
    // Due a little while, and nobody holds it: re-adding a job that exists is a no-op, so the grace is
    // short (a job lost with Redis's data, or never added while Redis was away, waits seconds).
    const heads = await dueHeads(db, RECONCILE_GRACE_MS, 1_000);
    if (heads.length > 0) await scheduler.schedule(heads.map((head) => head.id));
  };
  const timer = setInterval(() => {
    reconcile().catch((error: unknown) => logger.warn({ err: error }, 'webhook reconciler failed'));
  }, options.reconcileMs ?? 5_000);
  timer.unref();

  return {
    async close() {
      clearInterval(timer);
      await closeWithin(worker.close(), connection);
    },
  };
}
