/**
 * The BullMQ scheduler's jobs in a real Redis: what a worker finds in the `webhook-delivery`
 * queue after the routing tap (`schedule`) or a worker (`scheduleAt`: retries, the reconciler)
 * handed it lane heads. One job is added on its own and several in one bulk add; both must give
 * the same jobs — lane heads in order, at most 100 a job, each with its endpoint — a retry job
 * keyed by delivery and due time is added once however often it is asked for, and deliveries
 * waiting alike (`scheduleTogetherAt`) share delayed jobs.
 */
import type { Job, Queue } from 'bullmq';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createBullmqScheduler, type BullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import type { LaneHead } from '../../src/pipeline/webhooks/delivery-store.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { openWebhookQueue } from '../helpers/webhook-queue.ts';

interface JobData {
  readonly deliveryIds: readonly string[];
  readonly endpointIds: readonly string[];
}

/** The scheduler and a queue handle on the same prefix, to read its jobs; both closed after the test. */
function openQueue(): { scheduler: BullmqScheduler; queue: Queue<JobData> } {
  const prefix = uniquePrefix();
  const scheduler = createBullmqScheduler({ redisUrl: testRedisUrl(), prefix, logger: createLogger({ level: 'silent' }) });
  onTestFinished(() => scheduler.close());
  // Registered after the scheduler's close: runs before it.
  const { queue } = openWebhookQueue<JobData>(prefix);
  return { scheduler, queue };
}

const headsOf = (count: number, from = 1): LaneHead[] => Array.from({ length: count }, (_, index) => ({ id: String(from + index), endpointId: `ep_${(from + index) % 3}` }));

/** The jobs' lane heads, oldest job first. */
async function queuedHeads(queue: Queue<JobData>, state: 'waiting' | 'delayed'): Promise<LaneHead[][]> {
  const jobs: Job<JobData>[] = await queue.getJobs([state], 0, -1, true);
  return jobs.map((job) => job.data.deliveryIds.map((id, index) => ({ id, endpointId: job.data.endpointIds[index] ?? '' })));
}

describe('the BullMQ scheduler', () => {
  it('queues lane heads in order, at most 100 a job, one job or many', async () => {
    const { scheduler, queue } = openQueue();
    const many = headsOf(250);
    await scheduler.schedule(many);
    await scheduler.schedule(headsOf(1, 1000));
    await scheduler.schedule([]);

    const jobs = await queuedHeads(queue, 'waiting');
    expect(jobs.map((heads) => heads.length)).toEqual([100, 100, 50, 1]);
    expect(jobs.slice(0, 3).flat()).toEqual(many);
    expect(jobs[3]).toEqual([{ id: '1000', endpointId: 'ep_1' }]);
    expect(await scheduler.waiting()).toBe(4);
  });

  it('adds a delayed job per retry, keyed by delivery and due time, one or many at once', async () => {
    const { scheduler, queue } = openQueue();
    const dueAt = new Date(Date.now() + 60_000);
    const retries = headsOf(3).map((head) => ({ ...head, dueAt }));
    await scheduler.scheduleAt(retries);
    // Asked again (a reconciler pass, a postponed delivery): nothing added twice.
    await scheduler.scheduleAt(retries);
    await scheduler.scheduleAt([retries[0]!]);
    // The same delivery due at another time is another job.
    const later = { ...retries[0]!, dueAt: new Date(dueAt.getTime() + 1000) };
    await scheduler.scheduleAt([later]);
    await scheduler.scheduleAt([]);

    const delayed: Job<JobData>[] = await queue.getJobs(['delayed'], 0, -1, true);
    expect(delayed.map((job) => job.id).sort()).toEqual(
      [...retries.map(({ id }) => `delivery-${id}-${dueAt.getTime()}`), `delivery-1-${later.dueAt.getTime()}`].sort(),
    );
    expect(delayed.every((job) => job.data.deliveryIds.length === 1)).toBe(true);
    expect(await queuedHeads(queue, 'waiting')).toEqual([]);
  });

  it('adds deliveries waiting alike as delayed jobs of up to 100 heads, due at the time given', async () => {
    const { scheduler, queue } = openQueue();
    const waiting = headsOf(250);
    const dueAt = new Date(Date.now() + 3_600_000);
    await scheduler.scheduleTogetherAt(waiting, dueAt);
    await scheduler.scheduleTogetherAt([], dueAt);

    const delayed: Job<JobData>[] = await queue.getJobs(['delayed'], 0, -1, true);
    expect(delayed.map((job) => job.data.deliveryIds.length)).toEqual([100, 100, 50]);
    expect((await queuedHeads(queue, 'delayed')).flat()).toEqual(waiting);
    // Due within the add's milliseconds of the time given, not at once.
    for (const job of delayed) expect(Math.abs(job.timestamp + job.delay - dueAt.getTime())).toBeLessThan(1_000);
    expect(await queuedHeads(queue, 'waiting')).toEqual([]);
  });
});
