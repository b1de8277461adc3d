/**
 * Webhook delivery through BullMQ (with Redis): the worker of the `webhook-delivery` queue, whose
 * jobs name lane heads to attempt (`bullmq-scheduler.ts` adds them). Any number of worker processes
 * work the queue; a `server` process only adds jobs.
 *
 * A job is done once its deliveries are leased in Postgres: from there the lease, not the job,
 * keeps them — the attempts go on in the worker (at most `concurrency` at once), and the job's
 * BullMQ bookkeeping (a few dozen Redis commands) is shared by every delivery in it. The worker
 * leases a job's heads with one claim for many jobs — but the new deliveries its own process
 * stored: their insert leased them for it, and it sends the copy kept in memory
 * (`webhook-handoff.ts`), with no statement between the insert and the request.
 *
 * The deliveries stay in Postgres, the record BullMQ cannot lose: a job lost with Redis's data, or
 * not added because Redis was away, is added again by the reconciler, which looks for due lane
 * heads no one holds. A worker killed before leasing leaves its job stalled (BullMQ hands it out
 * again); killed mid-attempt, its lease on the delivery runs out and the reconciler queues it: the
 * delivery is attempted again, with the same `webhook-id`.
 */
import { Worker, type Job } from 'bullmq';
import pLimit from 'p-limit';
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { createGroupCommit } from '../coordination/group-commit.ts';
import { createAttemptFailureLog } from './attempt-failure-log.ts';
import { settledWithin } from '../coordination/within.ts';
import {
  CLOSE_TIMEOUT_MS,
  headsOf,
  MAX_IDS_PER_JOB,
  openBullmqConnection,
  outageLogger,
  WEBHOOK_QUEUE,
  type BullmqScheduler,
  type DeliveryJob,
  type JobHead,
} from './bullmq-scheduler.ts';
import { claimDeliveries, releaseDeliveries, type Delivery, type HeldDelivery, type LaneHead } from './delivery-store.ts';
import { dueHeads, type DueHeadsCursor } from './due-heads.ts';
import { createEndpointRoom } from './endpoint-room.ts';
import type { WebhookDeliverer } from './webhook-deliverer.ts';
import { createDeliveryHandoff } from './webhook-handoff.ts';
import { MAX_SLOT_WAIT, type DeliveryWorker } from './embedded-delivery.ts';


/**
 * How long a new delivery this process stored is kept for its worker, in ms: its job comes back
 * within milliseconds while the queue keeps up; one that waits longer (behind a backlog, or taken
 * by another process) is claimed by id when it comes.
 */
const KEPT_MS = 1_000;

/**
 * How long a lane head may be due and unheld before the reconciler queues it (again), in ms: short
 * while the queue is empty (a job lost with Redis's data waits seconds); longer while jobs wait, as
 * the head is then most likely in one of them.
 */
const RECONCILE_GRACE_MS = 2_000;
const RECONCILE_GRACE_BACKLOG_MS = 30_000;

/**
 * Due heads the reconciler reads in one page, and pages it reads at most in a pass: past every head
 * a worker may park (the room's bound, 50,000) to a page of heads to queue.
 */
const RECONCILE_PAGE = 1_000;
const RECONCILE_PAGES = 51;

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
  /** How often due lane heads without a job are looked for, in ms (`WEBHOOK_RECONCILE_INTERVAL_MS`). @default 5000 */
  readonly reconcileMs?: number;
  /** Due heads read in one page of that look (and queued in a pass at most). @default 1000 */
  readonly reconcilePage?: number;
  readonly logger: Logger;
  /** The clock a lease's wait for a send slot is read on, in ms. @default performance.now */
  readonly now?: () => number;
}

export interface BullmqDeliveryWorker extends DeliveryWorker {
  /**
   * Stops taking jobs, gives back what it holds unsent and waits for its attempts. `budgetMs`: how
   * long it may wait for Redis (the jobs under way marked done, a reconcile pass), in ms from the
   * call; then the worker closes without it, its connections cut. @default 5000
   */
  close(budgetMs?: number): Promise<void>;
}

export function startBullmqDelivery(options: BullmqDeliveryOptions): BullmqDeliveryWorker {
  const { db, deliverer, scheduler, logger } = options;
  const now = options.now ?? (() => performance.now());
  const connection = openBullmqConnection(options.redisUrl, true);
  connection.on('error', (error) => logger.debug({ err: error }, 'webhook worker connection error'));

  // Deliveries about to be attempted are leased together: one statement for many jobs' deliveries.
  const claims = createGroupCommit<JobHead, Delivery | undefined>({
    async write(heads) {
      const claimed = await claimDeliveries(db, heads.map((head) => head.id), options.leaseMs, heads.map((head) => head.lease));
      const leased = new Map(claimed.map((delivery) => [delivery.id, delivery]));
      // One delivery named twice in a batch (two jobs): only the first attempts it.
      return heads.map(({ id }) => {
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
  // Deliveries put back to wait for their endpoint to be enabled: a delayed job per batch (each is
  // due at its own time within the batch's milliseconds; the job comes at the latest of them).
  const waiting = createGroupCommit<LaneHead & { dueAt: Date }, void>({
    write: async (deliveries) => {
      const dueAt = new Date(Math.max(...deliveries.map((delivery) => delivery.dueAt.getTime())));
      await scheduler.scheduleTogetherAt(deliveries, dueAt);
      return deliveries.map(() => undefined);
    },
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
   * An endpoint this process does not know yet (created on another instance since its endpoint
   * cache's last refresh) has one place until it does: admitted without a bound, its heads would
   * all be leased and sent at once, the endpoint's gate refusing all but its maxConcurrency and
   * postponing the rest by a moment each — a maxConcurrency-1 endpoint's replay then arrived in
   * no order. Parked, they are leased in the order their jobs named them (due time, then id).
   */
  const room = createEndpointRoom((endpointId) => options.maxConcurrencyOf(endpointId) ?? 1);
  /** Set by close: no head is leased after it, and a leased one not sent yet gives its lease back. */
  let closing = false;
  const releases = createGroupCommit<HeldDelivery, void>({
    write: async (deliveries) => (await releaseDeliveries(db, deliveries), deliveries.map(() => undefined)),
    maxBatch: Math.max(1, options.concurrency),
  });
  const release = (delivery: HeldDelivery) => releases.submit(delivery).catch((error: unknown) => logger.warn({ err: error }, 'webhook lease not given back; it runs out'));
  const attempt = async (delivery: Delivery, onSent: () => void, onSlow: () => void) => {
    const outcome = await deliverer.deliver(delivery, onSent, onSlow);
    // Not queued (Redis away): the delivery is in Postgres, due; the reconciler queues it.
    if (outcome.nextInLane !== undefined) await nextHeads.submit({ id: outcome.nextInLane, endpointId: delivery.endpointId });
    if (outcome.retryAt !== undefined) await (outcome.waitsForEndpoint ? waiting : retries).submit({ id: delivery.id, endpointId: delivery.endpointId, dueAt: outcome.retryAt });
  };
  /** Attempts that failed here (Postgres or Redis away): logged once an outage, not once a delivery. */
  const failures = createAttemptFailureLog(logger);
  /** The leases of parked heads whose job named one (to be handed over when they are claimed). */
  const parkedLeases = new Map<string, string>();
  /** A place of the endpoint given back: its parked heads are tried again. */
  const leave = (endpointId: string) => {
    for (const id of room.leave(endpointId)) {
      const held = parkedLeases.get(id);
      parkedLeases.delete(id);
      void lease({ id, endpointId, lease: held }).catch(() => undefined);
    }
  };
  // New deliveries this process stores come leased, to be sent without a claim.
  const handoff = createDeliveryHandoff({ leaseMs: options.leaseMs, maxKept: concurrency, maxAgeMs: KEPT_MS, roomOf: (endpointId) => room.roomOf(endpointId), now });
  /** A head whose job named the lease its insert took, and that is not leased here after all: the lease is given back (due at once). */
  const giveBack = (head: JobHead) => {
    if (head.lease !== undefined) void release({ id: head.id, lease: head.lease });
  };
  const detach = scheduler.attach(handoff.intake);
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
      const late = now() - leasedAt > MAX_SLOT_WAIT * options.leaseMs;
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
        .then(
          () => failures.succeeded(),
          (error: unknown) => failures.failed(error, delivery.id),
        )
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
   * or parked. A head this process's insert leased and kept comes with its lease: the copy kept is
   * sent without a claim. A job's endpoints are known, but for jobs of earlier versions: those are
   * claimed first.
   */
  const lease = (head: JobHead): Promise<void> => {
    const placed = head.endpointId;
    if (placed !== undefined && !room.admit(placed, head.id)) {
      if (!room.holds(head.id)) giveBack(head);
      else if (head.lease !== undefined) parkedLeases.set(head.id, head.lease);
      return Promise.resolve();
    }
    return new Promise<void>((leased, failed) => {
      const admission = within(admitted, async (free) => {
        // Closing: a head still waiting for a place is not leased (the lease its insert took, when its
        // job names one, is given back); it stays due, unheld, and a worker's reconciler queues it again.
        if (closing) {
          if (placed !== undefined) leave(placed);
          giveBack(head);
          leased();
          return;
        }
        const handed = handoff.take(head);
        let delivery = handed?.delivery;
        const leasedAt = handed?.handedAt ?? now();
        if (!delivery) {
          try {
            delivery = await claims.submit(head);
          } catch (error) {
            if (placed !== undefined) leave(placed);
            failed(error instanceof Error ? error : new Error(String(error)));
            return;
          }
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

  /**
   * Jobs taken and not marked done in Redis yet (BullMQ emits `completed` or `failed` once it has
   * moved the job): what close waits for, within its budget.
   */
  const jobsUnderWay = new Set<string>();
  let allJobsDone: (() => void) | undefined;
  const jobDone = (job: Job<DeliveryJob> | undefined) => {
    if (job?.id !== undefined) jobsUnderWay.delete(job.id);
    if (jobsUnderWay.size === 0) allJobsDone?.();
  };
  const jobsDone = () => (jobsUnderWay.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (allJobsDone = resolve)));
  const work = async (job: Job<DeliveryJob>) => {
    if (job.id !== undefined) jobsUnderWay.add(job.id);
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
  worker.on('error', outageLogger(connection, logger, 'webhook worker error'));
  worker.on('failed', (job, error) => {
    jobDone(job);
    logger.warn({ err: error, deliveries: job && headsOf(job).map((head) => head.id) }, 'webhook job failed; the reconciler schedules its deliveries again');
  });
  worker.on('completed', jobDone);

  const reconcilePage = options.reconcilePage ?? RECONCILE_PAGE;
  const reconcile = async () => {
    // Heads dropped here over the room's bound are in no job any more: the short grace brings them back.
    const grace = room.takeDropped() || (await scheduler.waiting()) === 0 ? RECONCILE_GRACE_MS : RECONCILE_GRACE_BACKLOG_MS;
    // A head parked here is unleased and due, but held: queued again, it would only be parked
    // twice (during a drain, a thousand extra jobs and claims every pass). Another process's are
    // queued: whichever worker has room for its endpoint takes it. Parked heads are the oldest due,
    // so the look reads on past them, a page at a time, up to a page of heads to queue.
    const heads: (LaneHead & { dueAt: Date })[] = [];
    let after: DueHeadsCursor | undefined;
    for (let page = 0; page < RECONCILE_PAGES && heads.length < reconcilePage; page += 1) {
      const read = await dueHeads(db, grace, reconcilePage, after);
      for (const head of read.heads) if (!room.holds(head.id)) heads.push({ id: head.id, endpointId: head.endpointId, dueAt: head.nextAttemptAt });
      if (!read.next) break;
      after = read.next;
    }
    // Keyed by delivery and due time: a head still unheld at the next pass is not added twice.
    await scheduler.scheduleAt(heads);
  };
  /** A pass under way: a tick meanwhile is skipped (a long look must not run twice at once); close waits for it. */
  let reconciling: Promise<void> | undefined;
  const timer = setInterval(() => {
    reconciling ??= reconcile()
      .catch((error: unknown) => logger.warn({ err: error }, 'webhook reconciler failed'))
      .finally(() => (reconciling = undefined));
  }, options.reconcileMs ?? 5_000);
  timer.unref();

  let closed: Promise<void> | undefined;
  const close = async (budgetMs: number) => {
    const deadline = performance.now() + budgetMs;
    closing = true;
    detach();
    // Kept or parked with the insert's lease, and not sent: given back, due at once for whichever
    // worker takes their jobs (or the reconciler).
    const givenBack = [...handoff.close(), ...[...parkedLeases].map(([id, lease]) => ({ id, lease }))].map(release);
    parkedLeases.clear();
    clearInterval(timer);
    // No job is taken from now on (and the stalled checks stop); this waits for nothing.
    await worker.pause(true).catch((error: unknown) => logger.debug({ err: error }, 'webhook worker not paused; it is closed'));
    // What needs Redis is waited for together, within the budget: the jobs under way marked done,
    // and a reconcile pass — it waits on the queue, for ever while Redis is away. Then the worker
    // closes without Redis (`force`: BullMQ's own close waits for its blocking connection's end, for
    // ever while Redis is away, and its lock renewal and the connections' reconnects meanwhile kept
    // the process alive): its timers stop, its own connections are cut. A job not marked done is
    // stalled, and BullMQ hands it out again; a pass's heads are due in Postgres, for the next
    // reconciler.
    await settledWithin(Promise.all([jobsDone(), reconciling]), deadline - performance.now());
    await settledWithin(worker.close(true), deadline - performance.now());
    connection.disconnect();
    await Promise.all([...admittedTasks, ...inFlight, ...givenBack]);
  };
  return {
    close(budgetMs = CLOSE_TIMEOUT_MS) {
      closed ??= close(budgetMs);
      return closed;
    },
  };
}
