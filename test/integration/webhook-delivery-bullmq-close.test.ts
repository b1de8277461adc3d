/**
 * Closing the BullMQ delivery worker and the queue while Redis is stopped, against a real Postgres
 * and a Redis of the test's own: the worker had taken a job, and a reconcile pass waits on the
 * queue. Close ends within the budget its caller gives it (BullMQ's own close waits for its
 * connections for ever while Redis is away: 10 s here before, past the default shutdown's time),
 * and leaves nothing running — a process that starts and closes them exits by itself (BullMQ's
 * lock renewal and the worker's connections' reconnects kept it alive).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { startBullmqDelivery, type BullmqDeliveryWorker } from '../../src/pipeline/webhooks/bullmq-delivery.ts';
import { createBullmqScheduler, type BullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { recordingDeliverer } from '../helpers/recording-deliverer.ts';
import type { RedisInstance } from '../helpers/redis.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
/** What the test gives close to wait for Redis, in ms. */
const BUDGET_MS = 2_000;
/** Close's own work past its waits on Redis (leases given back in Postgres): the test's allowance for it, in ms. */
const OWN_WORK_MS = 1_000;

describe('the BullMQ delivery worker closed while Redis is stopped', () => {
  let fixture: DeliveryFixture;
  let redis: RedisInstance;
  let scheduler: BullmqScheduler;
  let worker: BullmqDeliveryWorker;

  // Everything but the close, so that the test's own timeout is close's budget.
  beforeAll(async () => {
    fixture = await createDeliveryFixture();
    redis = await startPrivateRedis({ autoDispose: false });
    const prefix = uniquePrefix();
    const queue = createBullmqScheduler({ redisUrl: redis.url, prefix, logger });
    const reconciling = deferred<void>();
    scheduler = {
      ...queue,
      // A reconcile pass asks the queue how many jobs wait first: once Redis is stopped, it waits.
      waiting: () => {
        if (redis.pid === undefined) reconciling.resolve();
        return queue.waiting();
      },
    };
    const recording = recordingDeliverer(fixture.db);
    worker = startBullmqDelivery({
      redisUrl: redis.url,
      prefix,
      db: fixture.db,
      deliverer: recording.deliverer,
      scheduler,
      concurrency: 2,
      leaseMs: 30_000,
      maxConcurrencyOf: () => 1,
      reconcileMs: 50,
      logger,
    });
    // The worker takes a job: its connections are up, its lock renewal and stalled checks running.
    const { heads } = await storeDeliveries(fixture.db, [fixture.delivery('taken')]);
    await scheduler.schedule(heads);
    await recording.handedOver(1);
    await recording.handed[0]!.finish();
    await redis.stop();
    await reconciling.promise;
  });
  afterAll(async () => {
    await worker.close(0);
    await scheduler.close(0);
    await redis.dispose();
    await fixture.dispose();
  });

  it('ends its close within the budget it is given', { timeout: BUDGET_MS + OWN_WORK_MS }, async () => {
    await expect(worker.close(BUDGET_MS)).resolves.toBeUndefined();
    await expect(scheduler.close(BUDGET_MS)).resolves.toBeUndefined();
  });
});

/**
 * A process of its own: starts the queue and the worker (which takes a job), waits for SIGTERM,
 * closes them and the database and then only waits — it must exit by itself. Should anything of
 * them still run 10 s later, it names what and exits with 3 (the timer is unref'd: it holds nothing).
 */
const CHILD = (root: string) => `
const at = (path) => new URL(path, ${JSON.stringify(root)}).href;
const { createLogger } = await import(at('src/logger.ts'));
const { createPostgresDatabase } = await import(at('src/db/postgres.ts'));
const { startBullmqDelivery } = await import(at('src/pipeline/webhooks/bullmq-delivery.ts'));
const { createBullmqScheduler } = await import(at('src/pipeline/webhooks/bullmq-scheduler.ts'));
const { DATABASE_URL, REDIS_URL, PREFIX, DELIVERY_ID, ENDPOINT_ID } = process.env;
const logger = createLogger({ level: 'silent' });
const db = createPostgresDatabase({ url: DATABASE_URL, logger });
const scheduler = createBullmqScheduler({ redisUrl: REDIS_URL, prefix: PREFIX, logger });
let taken;
const worker = startBullmqDelivery({
  redisUrl: REDIS_URL, prefix: PREFIX, db, scheduler, concurrency: 2, leaseMs: 30_000, maxConcurrencyOf: () => 1, reconcileMs: 50, logger,
  deliverer: { deliver: async () => (taken?.(), {}) },
});
await new Promise((resolve) => { taken = resolve; void scheduler.schedule([{ id: DELIVERY_ID, endpointId: ENDPOINT_ID }]); });
process.once('SIGTERM', async () => {
  await worker.close(${BUDGET_MS});
  await scheduler.close(${BUDGET_MS});
  await db.close();
  console.log('closed');
  setTimeout(() => {
    console.log('still running: ' + JSON.stringify(process.getActiveResourcesInfo()));
    process.exit(3);
  }, 10_000).unref();
});
console.log('taken');
`;

describe('a process that closes the BullMQ delivery worker while Redis is stopped', () => {
  it('exits by itself: no timer or connection of BullMQ or ioredis is left', { timeout: 60_000 }, async () => {
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const redis = await startPrivateRedis();
    const {
      heads: [head],
    } = await storeDeliveries(fixture.db, [fixture.delivery('child')]);
    const root = pathToFileURL(`${process.cwd()}/`).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD(root)], {
      env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: fixture.url, REDIS_URL: redis.url, PREFIX: uniquePrefix(), DELIVERY_ID: head!.id, ENDPOINT_ID: head!.endpointId },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
    await waitFor(() => lines.includes('taken'), { timeoutMs: 30_000, message: 'the child’s worker took its job' });

    await redis.stop();
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect({ code, lines, stderr }).toEqual({ code: 0, lines: ['taken', 'closed'], stderr: '' });
  });
});
