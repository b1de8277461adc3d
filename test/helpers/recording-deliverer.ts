/**
 * A webhook deliverer for tests of the delivery workers (a pure fake: the HTTP side has tests of
 * its own): each delivery is handed to the test, which says when its POST is over (`send`) and
 * when it is over and recorded as delivered in the real database (`finish`, once).
 */
import type { Queryable } from '../../src/db/database.ts';
import { recordAttempts, type Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import type { DeliveryOutcome, WebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';

export interface HandedDelivery {
  readonly delivery: Delivery;
  /** Its POST is over (the worker's slot is free); not recorded yet. */
  readonly send: () => void;
  /** Over and recorded as delivered; the outcome names the lane's next. Once. */
  readonly finish: () => Promise<void>;
  readonly finished: () => boolean;
}

export function recordingDeliverer(db: Queryable): {
  deliverer: WebhookDeliverer;
  handed: HandedDelivery[];
  /** Resolves once `count` deliveries have been handed over in all. */
  handedOver: (count: number) => Promise<void>;
} {
  const handed: HandedDelivery[] = [];
  let notify: () => void = () => {};
  const deliverer: WebhookDeliverer = {
    deliver(delivery, onSent) {
      return new Promise<DeliveryOutcome>((resolve) => {
        let finished = false;
        const finish = async () => {
          if (finished) return;
          finished = true;
          onSent?.();
          const [recorded] = await recordAttempts(db, [
            { delivery, outcome: 'delivered', status: 204, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null },
          ]);
          const nextInLane = recorded?.nextInLane;
          resolve(nextInLane === undefined ? {} : { nextInLane });
        };
        handed.push({ delivery, send: () => onSent?.(), finish, finished: () => finished });
        notify();
      });
    },
  };
  const handedOver = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (handed.length >= count) resolve();
      };
      notify = check;
      check();
    });
  return { deliverer, handed, handedOver };
}
