/**
 * The `webhook-delivery` queue's side that adds jobs (every process with Redis; a `server` process
 * only this): jobs name lane heads to attempt — a job for the heads stored or moved up together (up
 * to `MAX_IDS_PER_JOB`), a delayed job of its own for a delivery's retry. The worker that takes
 * them is `bullmq-delivery.ts`.
 */
import { Queue, type Job, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '../../logger.ts';
import { settledWithin } from '../coordination/within.ts';
import type { DeliveryIntake, DeliveryScheduler } from './delivery-scheduler.ts';
import type { LaneHead } from './delivery-store.ts';

export const WEBHOOK_QUEUE = 'webhook-delivery';

/** Lane heads named by one job at most. */
export const MAX_IDS_PER_JOB = 100;

export interface DeliveryJob {
  /** Lane heads to attempt. */
  readonly deliveryIds?: readonly string[];
  /** Their endpoints, in the same order (absent in jobs of earlier versions). */
  readonly endpointIds?: readonly string[];
  /** The leases their inserts took for the worker of their process, in the same order (null: none; absent when none has one). */
  readonly leases?: readonly (string | null)[];
  /** One delivery (the jobs of earlier versions). */
  readonly deliveryId?: string;
}

/** A lane head as a job names it; its endpoint unknown (undefined) in the jobs of earlier versions. */
export interface JobHead {
  readonly id: string;
  readonly endpointId: string | undefined;
  readonly lease?: string | undefined;
}

export const headsOf = (job: Job<DeliveryJob>): readonly JobHead[] => {
  const ids = job.data.deliveryIds ?? (job.data.deliveryId === undefined ? [] : [job.data.deliveryId]);
  return ids.map((id, index) => ({ id, endpointId: job.data.endpointIds?.[index], lease: job.data.leases?.[index] ?? undefined }));
};

const jobOf = (heads: readonly LaneHead[]): DeliveryJob => ({
  deliveryIds: heads.map((head) => head.id),
  endpointIds: heads.map((head) => head.endpointId),
  ...(heads.some((head) => head.lease !== undefined) && { leases: heads.map((head) => head.lease ?? null) }),
});

export interface BullmqScheduler extends DeliveryScheduler {
  /**
   * Adds a job of its own for each delivery, delayed until `dueAt`; keyed by delivery and time, so
   * the same one twice (a postponed delivery, a reconciler pass) is added once.
   */
  scheduleAt(deliveries: readonly (LaneHead & { dueAt: Date })[]): Promise<void>;
  /**
   * Adds delayed jobs naming up to `MAX_IDS_PER_JOB` of the heads each, all due at `dueAt`: for
   * deliveries that wait alike (a disabled endpoint's backlog, looked at again in an hour), a job
   * per hundred rather than per delivery. Not keyed: a head named by two jobs is claimed once.
   */
  scheduleTogetherAt(heads: readonly LaneHead[], dueAt: Date): Promise<void>;
  /** Jobs waiting to be worked (not delayed). */
  waiting(): Promise<number>;
  /** The worker of this process takes new deliveries through `intake` until the returned function is called. */
  attach(intake: DeliveryIntake): () => void;
}

/** BullMQ's own connections (named, for CLIENT LIST): a command one that fails fast for the producer, a blocking one for the worker. */
export function openBullmqConnection(redisUrl: string, blocking: boolean): Redis {
  return new Redis(
    redisUrl,
    blocking
      ? { maxRetriesPerRequest: null, connectionName: 'tributary-bullmq-worker' }
      : { maxRetriesPerRequest: 2, enableOfflineQueue: false, connectionName: 'tributary-bullmq' },
  );
}

/**
 * Closing must not hang on a Redis that does not answer: how long a close waits for it when its
 * caller gives it no budget (a share of SHUTDOWN_TIMEOUT_MS), in ms; then connections are cut.
 */
export const CLOSE_TIMEOUT_MS = 5_000;

async function closeWithin(close: Promise<void>, connection: Redis, budgetMs = CLOSE_TIMEOUT_MS): Promise<void> {
  await settledWithin(close, budgetMs);
  connection.disconnect();
}

/** How long errors after a logged one are logged at `debug` only, in ms. */
const QUIET_MS = 60_000;

/**
 * An error handler for a BullMQ queue or worker: BullMQ reports every failed reconnect of its
 * connection (several a second while Redis is away), so errors are logged at `warn` at most once
 * a minute, the others at `debug`, and the end of an outage once the connection is ready again.
 */
export function outageLogger(connection: Redis, logger: Logger, what: string, now: () => number = Date.now): (error: Error) => void {
  let quietUntil: number | undefined;
  connection.on('ready', () => {
    if (quietUntil !== undefined) logger.info(`${what}: redis reachable again`);
    quietUntil = undefined;
  });
  return (error) => {
    if (quietUntil !== undefined && now() < quietUntil) {
      logger.debug({ err: error }, what);
      return;
    }
    logger.warn({ err: error }, `${what}; further errors within a minute are logged at debug level`);
    quietUntil = now() + QUIET_MS;
  };
}

export function createBullmqScheduler(options: { readonly redisUrl: string; readonly prefix: string; readonly logger: Logger }): BullmqScheduler {
  const connection = openBullmqConnection(options.redisUrl, false);
  connection.on('error', (error) => options.logger.debug({ err: error }, 'webhook queue connection error'));
  const queue = new Queue<DeliveryJob>(WEBHOOK_QUEUE, { connection, prefix: options.prefix });
  queue.on('error', outageLogger(connection, options.logger, 'webhook queue error'));
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
  let attached: DeliveryIntake | undefined;
  /** Adds jobs naming up to `MAX_IDS_PER_JOB` of the heads each, in order. */
  const addInJobs = async (heads: readonly LaneHead[], opts: JobsOptions) => {
    const jobs = [];
    for (let offset = 0; offset < heads.length; offset += MAX_IDS_PER_JOB) {
      jobs.push({ name: 'deliver', data: jobOf(heads.slice(offset, offset + MAX_IDS_PER_JOB)), opts });
    }
    await add(jobs);
  };
  const schedule: BullmqScheduler['schedule'] = (heads) => addInJobs(heads, done);
  return {
    schedule,
    // Due now: a new job (a delayed one left for a later time finds the delivery handled, or not due).
    scheduleNow: schedule,
    // The worker of this process, when one runs: a worker of another process claims them from the table.
    intake: () => attached,
    attach(intake) {
      attached = intake;
      return () => {
        if (attached === intake) attached = undefined;
      };
    },
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
    scheduleTogetherAt: (heads, dueAt) => addInJobs(heads, { ...done, delay: Math.max(0, dueAt.getTime() - Date.now()) }),
    waiting: () => queue.getWaitingCount(),
    close: (budgetMs) => closeWithin(queue.close(), connection, budgetMs),
  };
}
