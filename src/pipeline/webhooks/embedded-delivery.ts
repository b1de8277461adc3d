/**
 * Webhook delivery without Redis (the embedded default): one loop in the process leases due lane
 * heads from the platform database and attempts up to `concurrency` at once. Deliveries are rows,
 * so a restart loses none: a lease left by a process that died runs out and the row is due again.
 *
 * Attempts in flight are bounded by `concurrency` while they wait for their receiver; recording
 * one goes on in the background (one statement for many), so its slot already serves the next.
 * The heads this process stored (its routing tap) or moved up (a lane's next after a finished
 * delivery) are claimed by id; the table is looked at for due heads — retries coming due,
 * deliveries stored by other processes or before a restart — at least every `idleMs`, and
 * continuously while such looks come back full (a backlog).
 */
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { LocalWake } from './delivery-scheduler.ts';
import { claimDeliveries, claimDue, releaseDeliveries, type Delivery } from './delivery-store.ts';
import { createEndpointRoom } from './endpoint-room.ts';
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
  /** An endpoint's `maxConcurrency` (undefined: not known yet). */
  readonly maxConcurrencyOf: (endpointId: string) => number | undefined;
  readonly logger: Logger;
}

export interface DeliveryWorker {
  /** Stops taking deliveries and waits for the attempts in flight. */
  close(): Promise<void>;
}

export function startEmbeddedDelivery(options: EmbeddedDeliveryOptions): DeliveryWorker {
  const { db, deliverer, wake, logger, concurrency } = options;
  const abort = new AbortController();
  /**
   * Leased deliveries waiting for a slot, oldest first (at most `concurrency`): claimed while the
   * attempts before them are under way, so a slot that frees up starts the next at once instead of
   * waiting for a claim. None waits longer than an attempt in flight takes, within its lease.
   */
  const ready: Delivery[] = [];
  /** Attempts whose HTTP part is not over: what `concurrency` bounds. */
  let sending = 0;
  /** Attempts until recorded: sent ones are recorded in the background, up to as many again. */
  const inFlight = new Set<Promise<void>>();
  /** What each endpoint has admitted (being claimed, ready or sending), within its maxConcurrency. */
  const room = createEndpointRoom(options.maxConcurrencyOf);
  /** A place of the endpoint given back: its parked heads are scheduled again. */
  const leave = (endpointId: string) => void wake.schedule(room.leave(endpointId).map((id) => ({ id, endpointId })));

  const attempt = (delivery: Delivery) => {
    sending += 1;
    let sent = false;
    const onSent = () => {
      if (sent) return;
      sent = true;
      sending -= 1;
      leave(delivery.endpointId);
      wake.poke();
    };
    const task: Promise<void> = deliverer
      .deliver(delivery, onSent)
      .then(({ nextInLane }) => {
        if (nextInLane !== undefined) void wake.schedule([{ id: nextInLane, endpointId: delivery.endpointId }]);
      })
      // The lease runs out and the delivery is due again: nothing is lost.
      .catch((error: unknown) => logger.error({ err: error, delivery: delivery.id }, 'webhook attempt failed; the delivery is retried when its lease ends'))
      .finally(() => {
        onSent();
        inFlight.delete(task);
        wake.poke();
      });
    inFlight.add(task);
  };
  const startReady = () => {
    while (!abort.signal.aborted && ready.length > 0 && sending < concurrency && inFlight.size < 2 * concurrency) attempt(ready.shift()!);
  };

  const idleMs = options.idleMs ?? 1_000;
  let lastLook = 0;
  let backlog = true;
  /**
   * Leases up to `wanted` due heads: the scheduled ones by id (only of endpoints with room here, a
   * place taken for each before the claim), then — when it is time — from the table.
   */
  const claim = async (wanted: number): Promise<Delivery[]> => {
    const heads = wake.take(wanted, (endpointId) => room.roomOf(endpointId));
    for (const head of heads) room.admit(head.endpointId, head.id);
    let due: Delivery[];
    try {
      due = heads.length > 0 ? await claimDeliveries(db, heads.map((head) => head.id), options.leaseMs) : [];
    } catch (error) {
      // Still due: queued again, their places given back.
      for (const head of heads) leave(head.endpointId);
      void wake.schedule(heads);
      throw error;
    }
    // Finished, held elsewhere or not their lane's head yet: their places go back.
    const leased = new Set(due.map((delivery) => delivery.id));
    for (const head of heads) if (!leased.has(head.id)) leave(head.endpointId);

    const more = wanted - due.length;
    if (more > 0 && (backlog || wake.takeOverflowed() || performance.now() - lastLook >= idleMs)) {
      lastLook = performance.now();
      const found = await claimDue(db, more, options.leaseMs, room.full());
      backlog = found.length === more;
      // Beyond its endpoint's share here: the lease goes back (the delivery stays due) and its id is parked.
      const parked = found.filter((delivery) => !room.admit(delivery.endpointId, delivery.id)).map((delivery) => delivery.id);
      if (parked.length > 0) await releaseDeliveries(db, parked).catch((error: unknown) => logger.warn({ err: error }, 'webhook leases not given back; they run out'));
      const kept = new Set(parked);
      due.push(...found.filter((delivery) => !kept.has(delivery.id)));
    }
    return due;
  };

  const run = async () => {
    const backoff = createBackoff({ initialMs: 200, maxMs: 5_000 });
    while (!abort.signal.aborted) {
      startReady();
      const wanted = concurrency - ready.length;
      let claimed = 0;
      if (wanted > 0) {
        try {
          const due = await claim(wanted);
          claimed = due.length;
          ready.push(...due);
          startReady();
          backoff.reset();
        } catch (error) {
          logger.warn({ err: error }, 'webhook deliveries could not be read; retrying');
          await pause(backoff.next(), abort.signal);
          continue;
        }
      }
      // Nothing more to claim for now, or no room for it: until an id is scheduled, a slot frees up, or it is time to look.
      if (claimed < wanted || wanted === 0) await wake.wait(idleMs, abort.signal);
    }
  };
  const loop = run();

  return {
    async close() {
      abort.abort();
      await loop;
      // Leased but not started: free for the next process at once rather than when the leases run out.
      const unstarted = ready.splice(0).map((delivery) => delivery.id);
      await Promise.all([...inFlight, releaseDeliveries(db, unstarted).catch((error: unknown) => logger.warn({ err: error }, 'webhook leases not released; they run out'))]);
    },
  };
}
