/**
 * Webhook delivery without Redis (the embedded default): one loop in the process leases due lane
 * heads from the platform database and attempts up to `concurrency` at once. Deliveries are rows,
 * so a restart loses none: a lease left by a process that died runs out and the row is due again.
 */
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { LocalWake } from './delivery-scheduler.ts';
import { claimDue } from './delivery-store.ts';
import type { WebhookDeliverer } from './webhook-deliverer.ts';

export interface EmbeddedDeliveryOptions {
  readonly db: Database;
  readonly deliverer: WebhookDeliverer;
  readonly wake: LocalWake;
  /** Attempts in flight at once. */
  readonly concurrency: number;
  /** How long a leased delivery is held, in ms (longer than an attempt can take). */
  readonly leaseMs: number;
  /** Longest wait between looks for due deliveries (retries come due by time), in ms. @default 1000 */
  readonly idleMs?: number;
  readonly logger: Logger;
}

export interface DeliveryWorker {
  /** Stops taking deliveries and waits for the attempts in flight. */
  close(): Promise<void>;
}

export function startEmbeddedDelivery(options: EmbeddedDeliveryOptions): DeliveryWorker {
  const { db, deliverer, wake, logger } = options;
  const abort = new AbortController();
  const inFlight = new Set<Promise<void>>();

  const attempt = (delivery: Parameters<WebhookDeliverer['deliver']>[0]) => {
    const task: Promise<void> = deliverer
      .deliver(delivery)
      .then(() => undefined)
      // The lease runs out and the delivery is due again: nothing is lost.
      .catch((error: unknown) => logger.error({ err: error, delivery: delivery.id }, 'webhook attempt failed; the delivery is retried when its lease ends'))
      .finally(() => {
        inFlight.delete(task);
        void wake.schedule([delivery.id]);
      });
    inFlight.add(task);
  };

  const run = async () => {
    const backoff = createBackoff({ initialMs: 200, maxMs: 5_000 });
    while (!abort.signal.aborted) {
      const free = options.concurrency - inFlight.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const due = await claimDue(db, free, options.leaseMs, []);
          claimed = due.length;
          for (const delivery of due) attempt(delivery);
          backoff.reset();
        } catch (error) {
          logger.warn({ err: error }, 'webhook deliveries could not be read; retrying');
          await pause(backoff.next(), abort.signal);
          continue;
        }
      }
      if (claimed === 0 || claimed < free) await wake.wait(options.idleMs ?? 1_000, abort.signal);
    }
  };
  const loop = run();

  return {
    async close() {
      abort.abort();
      await loop;
      await Promise.all([...inFlight]);
    },
  };
}
