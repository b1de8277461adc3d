/**
 * The routing tap against a real Postgres, with a scheduler whose first scheduling does not
 * answer (a BullMQ add held up): the next events' deliveries are stored and scheduled meanwhile —
 * only the inserts wait for one another — and each `deliver` still ends only once its own lane
 * heads are scheduled.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { DeliveryScheduler } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import type { LaneHead } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createWebhookTap } from '../../src/pipeline/webhooks/webhook-tap.ts';
import { createDeliveryFixture, placedEvent } from '../helpers/delivery-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
/** Longer than the test may take: the endpoint cache is read once. */
const NEVER_MS = 600_000;

describe('the webhook tap', () => {
  it('stores and schedules the next events while an earlier scheduling is held up, and answers each once its own heads are scheduled', async () => {
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const { db } = fixture;
    const endpoints = await createEndpointCache({ db, refreshMs: NEVER_MS, logger });
    onTestFinished(() => endpoints.close());
    const statistics = createDeliveryStatistics({ db, logger });
    onTestFinished(() => statistics.close());

    const scheduled: LaneHead[][] = [];
    let answerFirst: () => void = () => undefined;
    const firstAnswered = new Promise<void>((resolve) => (answerFirst = resolve));
    const scheduler: DeliveryScheduler = {
      schedule(heads) {
        scheduled.push([...heads]);
        // The first scheduling is held up until the test lets it go; the others answer at once.
        return scheduled.length === 1 ? firstAnswered : Promise.resolve();
      },
      scheduleNow: () => Promise.resolve(),
      intake: () => undefined,
      close: () => Promise.resolve(),
    };
    const tap = createWebhookTap({ db, endpoints, scheduler, statistics, logger, maxBodyBytes: 65_536 });

    let firstDone = false;
    const first = tap.deliver([placedEvent('evt_first')]).then(() => (firstDone = true));
    await waitFor(() => scheduled.length === 1, { message: 'the first event’s heads handed to the scheduler' });
    // Another entity's event, routed while the first's heads wait to be scheduled.
    await tap.deliver([placedEvent('evt_second')]);
    expect(firstDone).toBe(false);
    const { rows } = await db.query<{ event_id: string }>(`SELECT event_id FROM webhook_deliveries ORDER BY id`);
    expect(rows.map((row) => row.event_id)).toEqual(['evt_first', 'evt_second']);
    expect(scheduled).toHaveLength(2);

    answerFirst();
    await first;
    expect(firstDone).toBe(true);
  });
});
