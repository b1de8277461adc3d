/**
 * The embedded loop attempts a retry it recorded when it comes due — its wait ends then — not at
 * its next periodic look at the table: that look is set far beyond the test's timeout here, so the
 * retry can only come from the timer. Against a real Postgres, with a deliverer that fails the
 * first attempt (recorded with its retry time) and records the second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createLocalWake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { recordAttempts, storeDeliveries, type Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDueTimer } from '../../src/pipeline/webhooks/due-timer.ts';
import { startEmbeddedDelivery } from '../../src/pipeline/webhooks/embedded-delivery.ts';
import type { DeliveryOutcome, WebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
/** Longer than the test may take: no attempt may come from the loop's periodic look. */
const NEVER_MS = 600_000;
const RETRY_IN_MS = 300;

let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

describe('the embedded loop’s retries', () => {
  it('attempts a retry it recorded once it is due, without waiting for its periodic look', { timeout: 20_000 }, async () => {
    const db = fixture.db;
    const attempts: { readonly delivery: Delivery; readonly startedAt: number }[] = [];
    let retried: () => void = () => {};
    const second = new Promise<void>((resolve) => (retried = resolve));
    const deliverer: WebhookDeliverer = {
      async deliver(delivery, onSent): Promise<DeliveryOutcome> {
        attempts.push({ delivery, startedAt: Date.now() });
        onSent?.();
        const retryAt = attempts.length === 1 ? new Date(Date.now() + RETRY_IN_MS) : null;
        await recordAttempts(db, [
          { delivery, outcome: retryAt ? 'failed' : 'delivered', status: retryAt ? 500 : 204, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: retryAt },
        ]);
        if (!retryAt) retried();
        return retryAt ? { retryAt } : {};
      },
    };
    const timer = createDueTimer();
    const noted: number[] = [];
    const dueTimer = { ...timer, note: (at: number) => (noted.push(at), timer.note(at)) };
    const wake = createLocalWake();
    const worker = startEmbeddedDelivery({ db, deliverer, wake, concurrency: 2, leaseMs: 30_000, idleMs: NEVER_MS, maxConcurrencyOf: () => 1, logger, dueTimer });
    try {
      const { heads } = await storeDeliveries(db, [fixture.delivery('event:retried')]);
      await wake.schedule(heads);
      await second;
    } finally {
      await worker.close();
    }
    expect(attempts.map((attempt) => attempt.delivery.id)).toEqual([attempts[0]!.delivery.id, attempts[0]!.delivery.id]);
    // The loop armed its wait for the retry's due time, and attempted it no earlier.
    const dueAt = attempts[1]!.delivery.nextAttemptAt!.getTime();
    expect(noted).toEqual([dueAt]);
    expect(attempts[1]!.startedAt).toBeGreaterThanOrEqual(dueAt);
  });
});
