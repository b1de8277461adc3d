/**
 * When deliveries are attempted. The deliveries themselves are in Postgres; a scheduler only
 * makes sure a due lane head gets attempted:
 * - with Redis, a BullMQ job per lane head in the `webhook-delivery` queue (`bullmq-delivery.ts`),
 *   worked by any number of worker processes;
 * - embedded, an in-process wake-up of the delivery loop (`embedded-delivery.ts`).
 */
export interface DeliveryScheduler {
  /** These deliveries (lane heads) are to be attempted when due. */
  schedule(deliveryIds: readonly string[]): Promise<void>;
  /** These deliveries are due now, even if they were waiting for a later attempt (an endpoint enabled again). */
  scheduleNow(deliveryIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** The embedded scheduler: wakes the in-process loop, which finds due lane heads in the table. */
export interface LocalWake extends DeliveryScheduler {
  /** Resolves at the next `schedule`, or after `ms`. */
  wait(ms: number, signal: AbortSignal): Promise<void>;
}

export function createLocalWake(): LocalWake {
  let waiters: (() => void)[] = [];
  let woken = false;
  const wakeAll = () => {
    woken = true;
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve();
  };
  return {
    schedule(ids) {
      if (ids.length > 0) wakeAll();
      return Promise.resolve();
    },
    scheduleNow(ids) {
      if (ids.length > 0) wakeAll();
      return Promise.resolve();
    },
    wait(ms, signal) {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          woken = false;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
        waiters.push(done);
      });
    },
    close() {
      wakeAll();
      return Promise.resolve();
    },
  };
}
