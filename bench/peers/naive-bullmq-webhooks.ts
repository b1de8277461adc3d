/**
 * The baseline of the `webhooks` drain: webhook delivery as one writes it first with BullMQ — one
 * job per delivery carrying the URL and the body (added with `queue.addBulk`), and a `Worker` of
 * the same concurrency as Tributary's whose processor POSTs the body and reads the answer. It posts
 * with `undici.request` over an undici `Agent` of `concurrency` keep-alive connections: the HTTP
 * client Tributary's deliverer and the plain POST loop use (global `fetch`, undici under a WHATWG
 * layer, costs several times the CPU per request, which the baseline must not be charged for).
 * No database, no lanes, no per-endpoint limits, no signature, no attempt log; a failed job is
 * BullMQ's to retry (`attempts`, default 1). Completed and failed jobs are removed, as Tributary's are. Not a
 * server: the workload runs it in its own process (the runner's), apart from the receivers.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';

export interface NaiveBullmqWebhooksOptions {
  readonly redisUrl: string;
  /** BullMQ key prefix (its own, on the benchmark's Redis). */
  readonly prefix: string;
  /** Jobs worked at once. */
  readonly concurrency: number;
  /** Called once per job that completed (the receiver answered 2xx). */
  readonly onDelivered?: () => void;
  /** Called once per job that failed. */
  readonly onFailed?: (error: Error) => void;
}

export interface NaiveBullmqWebhooks {
  /** Adds one job per delivery, in bulks of 1,000. */
  enqueue(deliveries: readonly { readonly url: string; readonly body: string }[]): Promise<void>;
  /** Starts the worker. */
  start(): void;
  /** Closes the worker (after the jobs in flight), the queue and their connections. Idempotent. */
  close(): Promise<void>;
}

const QUEUE = 'naive-webhooks';
const BULK = 1000;

interface NaiveJob {
  readonly url: string;
  readonly body: string;
}

/** How long `close` waits for the worker and the queue before it drops their connections, in ms. */
const CLOSE_TIMEOUT_MS = 5000;

export function createNaiveBullmqWebhooks(options: NaiveBullmqWebhooksOptions): NaiveBullmqWebhooks {
  // The producer fails fast when Redis is away; BullMQ's workers block on Redis, so their
  // connection must retry forever (its documented setting).
  const queueConnection = new Redis(options.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: false });
  const workerConnection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  for (const connection of [queueConnection, workerConnection]) connection.on('error', () => {});
  const queue = new Queue<NaiveJob>(QUEUE, { connection: queueConnection, prefix: options.prefix });
  queue.on('error', () => {});
  // One keep-alive connection per job in flight, as the POST loop's.
  const agent = new Agent({ connections: options.concurrency });
  let worker: Worker<NaiveJob> | undefined;
  let closing: Promise<void> | undefined;
  return {
    async enqueue(deliveries) {
      for (let start = 0; start < deliveries.length; start += BULK) {
        await queue.addBulk(
          deliveries.slice(start, start + BULK).map((data) => ({ name: 'deliver', data, opts: { removeOnComplete: true, removeOnFail: true } })),
        );
      }
    },
    start() {
      worker = new Worker<NaiveJob>(
        QUEUE,
        async (job) => {
          const response = await request(job.data.url, { dispatcher: agent, method: 'POST', headers: { 'content-type': 'application/json' }, body: job.data.body });
          await response.body.dump();
          if (response.statusCode < 200 || response.statusCode >= 300) throw new Error(`HTTP ${response.statusCode}`);
        },
        { connection: workerConnection, prefix: options.prefix, concurrency: options.concurrency },
      );
      worker.on('completed', () => options.onDelivered?.());
      worker.on('failed', (_job, error) => options.onFailed?.(error));
      worker.on('error', () => {});
    },
    close() {
      // Bounded: with Redis gone (the run interrupted) BullMQ would wait for it forever.
      closing ??= (async () => {
        const closed = Promise.allSettled([worker?.close(), queue.close()]);
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref())]);
        queueConnection.disconnect();
        workerConnection.disconnect();
        await agent.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
