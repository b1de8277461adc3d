/**
 * Webhook delivery without Redis (the embedded default): one loop in the process leases due lane
 * heads from the platform database and attempts up to `concurrency` at once. Deliveries are rows,
 * so a restart loses none: a lease left by a process that died runs out and the row is due again.
 *
 * The heads this process stored (its routing tap) or moved up (a lane's next after a finished
 * delivery) are claimed by id; the table is looked at for due heads — retries coming due,
 * deliveries stored by other processes or before a restart — at least every `idleMs`, and
 * continuously while such looks come back full (a backlog).
 */
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { LocalWake } from './delivery-scheduler.ts';
import { claimDeliveries, claimDue, type Delivery } from './delivery-store.ts';
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

  const attempt = (delivery: Delivery) => {
    const task: Promise<void> = deliverer
      .deliver(delivery)
      .then(({ nextInLane }) => {
        if (nextInLane !== undefined) void wake.schedule([nextInLane]);
      })
      // The lease runs out and the delivery is due again: nothing is lost.
      .catch((error: unknown) => logger.error({ err: error, delivery: delivery.id }, 'webhook attempt failed; the delivery is retried when its lease ends'))
      .finally(() => {
        inFlight.delete(task);
        wake.poke();
      });
    inFlight.add(task);
  };

  const idleMs = options.idleMs ?? 1_000;
  let lastLook = 0;
  let backlog = true;
  /** Leases up to `free` due heads: the scheduled ones by id, then — when it is time — from the table. */
  const claim = async (free: number): Promise<Delivery[]> => {
    const ids = wake.take(free);
    const due = ids.length > 0 ? await claimDeliveries(db, ids, options.leaseMs) : [];
    const wanted = free - due.length;
    if (wanted > 0 && (backlog || wake.takeOverflowed() || performance.now() - lastLook >= idleMs)) {
      lastLook = performance.now();
      const found = await claimDue(db, wanted, options.leaseMs, []);
      backlog = found.length === wanted;
      due.push(...found);
    }
    return due;
  };

  const run = async () => {
    const backoff = createBackoff({ initialMs: 200, maxMs: 5_000 });
    while (!abort.signal.aborted) {
      const free = options.concurrency - inFlight.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const due = await claim(free);
          claimed = due.length;
          for (const delivery of due) attempt(delivery);
          backoff.reset();
        } catch (error) {
          logger.warn({ err: error }, 'webhook deliveries could not be read; retrying');
          await pause(backoff.next(), abort.signal);
          continue;
        }
      }
      if (claimed === 0 || claimed < free) await wake.wait(idleMs, abort.signal);
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
