/**
 * A handle on the BullMQ `webhook-delivery` queue under a key prefix, for the webhook workers'
 * tests: its jobs to read, and whether it is drained. Obliterated after the test.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { onTestFinished } from 'vitest';
import { WEBHOOK_QUEUE, type DeliveryJob } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { testRedisUrl } from './services.ts';

export function openWebhookQueue<Data = DeliveryJob>(prefix: string): { queue: Queue<Data>; drained: () => Promise<boolean> } {
  const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: 2 });
  const queue = new Queue<Data>(WEBHOOK_QUEUE, { connection, prefix });
  onTestFinished(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    connection.disconnect();
  });
  /** Each job taken and done: none waiting, active, delayed or prioritized (done jobs are removed). */
  const drained = async () => Object.values(await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).every((count) => count === 0);
  return { queue, drained };
}
