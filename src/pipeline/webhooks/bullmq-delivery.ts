/**
 * Webhook delivery through BullMQ (with Redis): jobs in the `webhook-delivery` queue name lane
 * heads to attempt — a job for the heads stored or moved up together (up to `MAX_IDS_PER_JOB`), a
 * delayed job of its own for a delivery's retry. Any number of worker processes work the queue; a
 * `server` process only adds jobs.
 *
 * A job is done once its deliveries are leased in Postgres: from there the lease, not the job,
 * keeps them — the attempts go on in the worker (at most `concurrency` at once), and the job's
 * BullMQ bookkeeping (a few dozen Redis commands) is shared by every delivery in it.
 *
 * The deliveries stay in Postgres, the record BullMQ cannot lose: a job lost with Redis's data, or
 * not added because Redis was away, is added again by the reconciler, which looks for due lane
 * heads no one holds. A worker killed before leasing leaves its job stalled (BullMQ hands it out
 * again); killed mid-attempt, its lease on the delivery runs out and the reconciler queues it: the
 * delivery is attempted again, with the same `webhook-id`.
 */
import { Queue, Worker, type Job, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { DeliveryScheduler } from './delivery-scheduler.ts';
import { createGroupCommit } from '../coordination/group-commit.ts';
import { claimDeliveries, dueHeads, releaseDeliveries, type Delivery, type HeldDelivery, type LaneHead } from './delivery-store.ts';
import { createEndpointRoom } from './endpoint-room.ts';
import type { WebhookDeliverer } from './webhook-deliverer.ts';
import type { DeliveryWorker } from './embedded-delivery.ts';

export const WEBHOOK_QUEUE = 'webhook-delivery';

/** Lane heads named by one job at most. */
const MAX_IDS_PER_JOB = 100;

/**
 * The part of its lease a leased delivery may wait for a send slot: the lease is two attempts'
 * timeouts and 5 s (workers/webhook-delivery.ts), so an attempt started within it still ends, and
 * is recorded, before the lease does.
 */
const MAX_SLOT_WAIT = 0.25;

/**
 * How long a lane head may be due and unheld before the reconciler queues it (again), in ms: short
 * while the queue is empty (a job lost with Redis's data waits seconds); longer while jobs wait, as
 * the head is then most likely in one of them.
 */
const RECONCILE_GRACE_MS = 2_000;
const RECONCILE_GRACE_BACKLOG_MS = 30_000;

interface DeliveryJob {
  /** Lane heads to attempt. */
  readonly deliveryIds?: readonly string[];
  /** Their endpoints, in the same order (absent in jobs of earlier versions). */
  readonly endpointIds?: readonly string[];
  /** One delivery (the jobs of earlier versions). */
  readonly deliveryId?: string;
}

/** A job's lane heads; the endpoint unknown (undefined) in the jobs of earlier versions. */
const headsOf = (job: Job<DeliveryJob>): readonly { id: string; endpointId: string | undefined }[] => {
  const ids = job.data.deliveryIds ?? (job.data.deliveryId === undefined ? [] : [job.data.deliveryId]);
  return ids.map((id, index) => ({ id, endpointId: job.data.endpointIds?.[index] }));
};

const jobOf = (heads: readonly LaneHead[]): DeliveryJob => ({ deliveryIds: heads.map((head) => head.id), endpointIds: heads.map((head) => head.endpointId) });

export interface BullmqScheduler extends DeliveryScheduler {
  /**
   * Adds a job of its own for each delivery, delayed until `dueAt`; keyed by delivery and time, so
   * the same one twice (a postponed delivery, a reconciler pass) is added once.
   */
  scheduleAt(deliveries: readonly (LaneHead & { dueAt: Date })[]): Promise<void>;
  /** Jobs waiting to be worked (not delayed). */
  waiting(): Promise<number>;
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
  const done = { removeOnComplete: true, removeOnFail: true };
  /**
   * One job is added on its own: `addBulk` builds an ioredis pipeline, and each pipeline gets a copy
   * of every script BullMQ defined on the connection (64, each twice) — measured at 1.6 to 3 times
   * the CPU of adding the job alone. Up to 100 lane heads make one job, so most batches are one job.
   */
  const add = async (jobs: { name: string; data: DeliveryJob; opts: JobsOptions }[]) => {
    const [only] = jobs;
    if (jobs.length > 1) await queue.addBulk(jobs);
    else if (only) await queue.add(only.name, only.data, only.opts);
  };
  const schedule: BullmqScheduler['schedule'] = async (heads) => {
    const jobs = [];
    for (let offset = 0; offset < heads.length; offset += MAX_IDS_PER_JOB) {
      jobs.push({ name: 'deliver', data: jobOf(heads.slice(offset, offset + MAX_IDS_PER_JOB)), opts: done });
    }
    await add(jobs);
  };
  return {
    schedule,
    // Due now: a new job (a delayed one left for a later time finds the delivery handled, or not due).
    scheduleNow: schedule,
    // Any worker process may take a delivery: each is claimed from the table.
    intake: () => undefined,
    async scheduleAt(deliveries) {
      const now = Date.now();
      await add(
        deliveries.map(({ id, endpointId, dueAt }) => ({
          name: 'deliver',
          data: jobOf([{ id, endpointId }]),
          opts: { ...done, jobId: `delivery-${id}-${dueAt.getTime()}`, delay: Math.max(0, dueAt.getTime() - now) },
        })),
      );
    },
    waiting: () => queue.getWaitingCount(),
    close: () => closeWithin(queue.close(), connection),
  };
}

export interface BullmqDeliveryOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly db: Database;
  readonly deliverer: WebhookDeliverer;
  readonly scheduler: BullmqScheduler;
  /** Attempts sent at once by this process (and twice as many deliveries leased, to send next; jobs worked at once). */
  readonly concurrency: number;
  /** How long a leased delivery is held, in ms. */
  readonly leaseMs: number;
  /** An endpoint's `maxConcurrency` (undefined: not known yet). */
  readonly maxConcurrencyOf: (endpointId: string) => number | undefined;
  /** How often due lane heads without a job are looked for, in ms. @default 5000 */
  readonly reconcileMs?: number;
  readonly logger: Logger;
}

export function startBullmqDelivery(options: BullmqDeliveryOptions): DeliveryWorker {
  const { db, deliverer, scheduler, logger } = options;
  const connection = connect(options.redisUrl, true);
  connection.on('error', (error) => logger.debug({ err: error }, 'webhook worker connection error'));

  // Deliveries about to be attempted are leased together: one statement for many jobs' deliveries.
  const claims = createGroupCommit<string, Delivery | undefined>({
    async write(ids) {
      const leased = new Map((await claimDeliveries(db, ids, options.leaseMs)).map((delivery) => [delivery.id, delivery]));
      // One delivery named twice in a batch (two jobs): only the first attempts it.
      return ids.map((id) => {
        const delivery = leased.get(id);
        leased.delete(id);
        return delivery;
      });
    },
    maxBatch: Math.max(1, options.concurrency),
  });
  // What comes after attempts, queued together: the lanes' next heads in one job, retries each in its own.
  const nextHeads = createGroupCommit<LaneHead, void>({
    write: async (heads) => (await scheduler.schedule(heads), heads.map(() => undefined)),
    maxBatch: MAX_IDS_PER_JOB,
  });
  const retries = createGroupCommit<LaneHead & { dueAt: Date }, void>({
    write: async (deliveries) => (await scheduler.scheduleAt(deliveries), deliveries.map(() => undefined)),
    maxBatch: MAX_IDS_PER_JOB,
  });

  /**
   * Two stages, as in the embedded loop: a delivery is admitted (a place of `2 × concurrency`)
   * before it is leased, and sent within `concurrency` slots — so the next deliveries are claimed
   * while the attempts before them are under way, and a slot that frees up starts one already
   * leased instead of waiting for a claim (at 1,000 deliveries/s the claim had held a slot as long
   * as the attempt). Both are given back when the HTTP part is over; recording the attempt goes on
   * in the background, up to as many again. A leased delivery waits for a slot about as long as an
   * attempt takes; one that waited longer than `MAX_SLOT_WAIT` of its lease (every slot held by
   * attempts that hang) gives its lease back and is queued again, so that an attempt started under
   * a lease still has the time to end and be recorded within it.
   */
  const concurrency = Math.max(1, options.concurrency);
  const admitted = pLimit(2 * concurrency);
  const sending = pLimit(concurrency);
  const inFlight = new Set<Promise<void>>();
  /** Admitted deliveries, from their claim to their attempt's end (or their lease given back): what close waits for. */
  const admittedTasks = new Set<Promise<void>>();
  /**
   * What each endpoint has admitted here (being claimed, waiting for a slot or being sent), within
   * its maxConcurrency; a head beyond it is parked, unleased, until one of the endpoint's ends.
   */
  const room = createEndpointRoom(options.maxConcurrencyOf);
  /** Set by close: no head is leased after it, and a leased one not sent yet gives its lease back. */
  let closing = false;
  const releases = createGroupCommit<HeldDelivery, void>({
    write: async (deliveries) => (await releaseDeliveries(db, deliveries), deliveries.map(() => undefined)),
    maxBatch: Math.max(1, options.concurrency),
  });
  const release = (delivery: Delivery) => releases.submit(delivery).catch((error: unknown) => logger.warn({ err: error }, 'webhook lease not given back; it runs out'));
  const attempt = async (delivery: Delivery, onSent: () => void, onSlow: () => void) => {
    const outcome = await deliverer.deliver(delivery, onSent, onSlow);
    // Not queued (Redis away): the delivery is in Postgres, due; the reconciler queues it.
    if (outcome.nextInLane !== undefined) await nextHeads.submit({ id: outcome.nextInLane, endpointId: delivery.endpointId });
    if (outcome.retryAt !== undefined) await retries.submit({ id: delivery.id, endpointId: delivery.endpointId, dueAt: outcome.retryAt });
  };
  /** A place of the endpoint given back: its parked heads are tried again. */
  const leave = (endpointId: string) => {
    for (const id of room.leave(endpointId)) void lease({ id, endpointId }).catch(() => undefined);
  };
  /** Runs `task` within `limit`, its place given back when `task` calls `free` or ends. */
  const within = (limit: ReturnType<typeof pLimit>, task: (free: () => void) => Promise<void>) =>
    limit(
      () =>
        new Promise<void>((free) => {
          void task(free).finally(free);
        }),
    );
  /**
   * Sends a leased delivery once a slot is free, giving the admission place back with the slot.
   * Once closing, gives its lease back instead (due again: a worker's reconciler queues it); when
   * it waited too long for the slot, gives it back and queues it again at once.
   */
  const send = (delivery: Delivery, leasedAt: number, freeAdmission: () => void) =>
    within(sending, async (free) => {
      const { endpointId } = delivery;
      let left = false;
      const leaveOnce = () => {
        if (left) return;
        left = true;
        leave(endpointId);
      };
      const late = performance.now() - leasedAt > MAX_SLOT_WAIT * options.leaseMs;
      if (closing || late) {
        leaveOnce();
        await release(delivery);
        if (late && !closing) {
          await nextHeads.submit({ id: delivery.id, endpointId }).catch((error: unknown) => logger.warn({ err: error, delivery: delivery.id }, 'webhook delivery not queued again; the reconciler queues it'));
        }
        return;
      }
      const freeBoth = () => {
        if (inFlight.size > 2 * concurrency) return;
        free();
        freeAdmission();
      };
      const task = attempt(
        delivery,
        () => {
          leaveOnce();
          freeBoth();
        },
        // In the slow endpoints' share: its slot goes to the next delivery (its endpoint's place stays taken).
        freeBoth,
      )
        .catch((error: unknown) => logger.error({ err: error, delivery: delivery.id }, 'webhook attempt failed; the delivery is retried when its lease ends'))
        .finally(() => {
          leaveOnce();
          inFlight.delete(task);
        });
      inFlight.add(task);
      await task;
    });
  /**
   * Takes a place for the head's endpoint, then an admission place, leases it and sends it; resolves
   * once leased, found not attemptable (finished, held by another worker, not its lane's head yet)
   * or parked. A job's endpoints are known, but for jobs of earlier versions: those are claimed first.
   */
  const lease = (head: { id: string; endpointId: string | undefined }): Promise<void> => {
    const placed = head.endpointId;
    if (placed !== undefined && !room.admit(placed, head.id)) return Promise.resolve();
    return new Promise<void>((leased, failed) => {
      const admission = within(admitted, async (free) => {
        // Closing: a head still waiting for a place is not leased; it stays due, unheld, and a
        // worker's reconciler queues it again.
        if (closing) {
          if (placed !== undefined) leave(placed);
          leased();
          return;
        }
        let delivery: Delivery | undefined;
        const leasedAt = performance.now();
        try {
          delivery = await claims.submit(head.id);
        } catch (error) {
          if (placed !== undefined) leave(placed);
          failed(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        leased();
        if (!delivery) {
          if (placed !== undefined) leave(placed);
          return;
        }
        if (placed === undefined && !room.admit(delivery.endpointId, delivery.id)) {
          void release(delivery);
          return;
        }
        await send(delivery, leasedAt, free);
      });
      admittedTasks.add(admission);
      void admission.finally(() => admittedTasks.delete(admission));
    });
  };

  const work = async (job: Job<DeliveryJob>) => {
    await Promise.all(headsOf(job).map(lease));
  };
  const worker = new Worker<DeliveryJob>(WEBHOOK_QUEUE, work, {
    connection,
    prefix: options.prefix,
    // Jobs waiting for slots at once; each is done when its deliveries are leased.
    concurrency,
    // A job whose worker died before leasing is handed out again after this.
    lockDuration: Math.min(options.leaseMs, 30_000),
    stalledInterval: Math.min(options.leaseMs, 30_000),
  });
  worker.on('error', (error) => logger.warn({ err: error }, 'webhook worker error'));
  worker.on('failed', (job, error) => logger.warn({ err: error, deliveries: job && headsOf(job).map((head) => head.id) }, 'webhook job failed; the reconciler schedules its deliveries again'));

  const reconcile = async () => {
    // Heads dropped here over the room's bound are in no job any more: the short grace brings them back.
    const grace = room.takeDropped() || (await scheduler.waiting()) === 0 ? RECONCILE_GRACE_MS : RECONCILE_GRACE_BACKLOG_MS;
    // A head parked here is unleased and due, but held: queued again, it would only be parked
    // twice (during a drain, a thousand extra jobs and claims every pass). Another process's are
    // queued: whichever worker has room for its endpoint takes it.
    const heads = (await dueHeads(db, grace, 1_000)).filter((head) => !room.holds(head.id));
    // Keyed by delivery and due time: a head still unheld at the next pass is not added twice.
    await scheduler.scheduleAt(heads.map((head) => ({ id: head.id, endpointId: head.endpointId, dueAt: head.nextAttemptAt })));
  };
  const timer = setInterval(() => {
    reconcile().catch((error: unknown) => logger.warn({ err: error }, 'webhook reconciler failed'));
  }, options.reconcileMs ?? 5_000);
  timer.unref();

  return {
    async close() {
      closing = true;
      clearInterval(timer);
      await closeWithin(worker.close(), connection);
      await Promise.all([...admittedTasks, ...inFlight]);
    },
  };
}
