/**
 * Webhook delivery without Redis (the embedded default): one loop in the process leases due lane
 * heads from the platform database and attempts up to `concurrency` at once. Deliveries are rows,
 * so a restart loses none: a lease left by a process that died runs out and the row is due again.
 *
 * Attempts in flight are bounded by `concurrency` while they wait for their receiver; recording
 * one goes on in the background (one statement for many), so its slot already serves the next.
 * The heads this process stored (its routing tap) or moved up (a lane's next after a finished
 * delivery) are claimed by id; the table is looked at for due heads — retries coming due,
 * deliveries stored by other processes or before a restart — at least every `idleMs`, when a
 * retry this loop recorded comes due (due-timer.ts), and continuously while such looks come back
 * full (a backlog).
 */
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import { createAttemptFailureLog } from './attempt-failure-log.ts';
import type { LocalWake } from './delivery-scheduler.ts';
import { claimDeliveries, claimDue, releaseDeliveries, type Delivery } from './delivery-store.ts';
import { createDueTimer, type DueTimer } from './due-timer.ts';
import { createEndpointRoom } from './endpoint-room.ts';
import { takenBefore } from './taken-order.ts';
import type { WebhookDeliverer } from './webhook-deliverer.ts';

/**
 * The part of its lease a leased delivery may wait for a send slot (both workers): the lease is two
 * attempts' timeouts and 5 s (workers/webhook-delivery.ts), so an attempt started within it still
 * ends, and is recorded, before the lease does. One that waited longer gives its lease back and is
 * claimed again.
 */
export const MAX_SLOT_WAIT = 0.25;

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
  /** The clock a ready delivery's wait for a slot is measured by, in ms. @default performance.now */
  readonly now?: () => number;
  /** When the loop looks for the retries it knows of (due-timer.ts). @default createDueTimer() */
  readonly dueTimer?: DueTimer;
}

export interface DeliveryWorker {
  /** Stops taking deliveries and waits for the attempts in flight. */
  close(): Promise<void>;
}

export function startEmbeddedDelivery(options: EmbeddedDeliveryOptions): DeliveryWorker {
  const { db, deliverer, wake, logger, concurrency } = options;
  const abort = new AbortController();
  /**
   * Leased deliveries waiting for a slot, in the order they are taken (at most `concurrency`): claimed while the
   * attempts before them are under way, so a slot that frees up starts the next at once instead of
   * waiting for a claim. None waits longer than an attempt in flight takes, within its lease.
   */
  const ready: Delivery[] = [];
  const now = options.now ?? (() => performance.now());
  /** The earliest retry this loop recorded (or put off) and has not looked for yet. */
  const dueTimer = options.dueTimer ?? createDueTimer();
  /** When each ready delivery was leased (as `now` tells): one that waits too long goes back (`MAX_SLOT_WAIT`). */
  const leasedAt = new WeakMap<Delivery, number>();
  /** Each joins `ready` in the order deliveries are taken (taken-order.ts): after those taken before it, so an endpoint's start in that order. */
  const makeReady = (deliveries: readonly Delivery[]) => {
    const at = now();
    for (const delivery of deliveries) {
      leasedAt.set(delivery, at);
      let index = ready.length;
      while (index > 0 && takenBefore(delivery, ready[index - 1]!)) index -= 1;
      ready.splice(index, 0, delivery);
    }
  };
  /** Leases being given back by ready deliveries that waited too long: waited for by `close`. */
  const givingBack = new Set<Promise<void>>();
  /** Attempts whose HTTP part is not over: what `concurrency` bounds. */
  let sending = 0;
  /** Attempts until recorded: sent ones are recorded in the background, up to as many again. */
  const inFlight = new Set<Promise<void>>();
  /**
   * What each endpoint has admitted (being claimed, ready or sending): twice its maxConcurrency —
   * as many ready as sending — so its next deliveries are leased while the ones before are sent.
   */
  const room = createEndpointRoom((endpointId) => {
    const max = options.maxConcurrencyOf(endpointId);
    return max === undefined ? undefined : 2 * max;
  });
  /** Places the routing tap reserved for deliveries it is storing (`intake`): they will join `ready`. */
  let reserved = 0;
  /** Deliveries the claim under way may add to `ready`: the tap's reservations leave them room. */
  let claiming = 0;
  /** The last look at the table came back full: look again at the next claim. */
  let backlog = true;
  /** Attempts being sent, by endpoint: a ready delivery starts only while its endpoint is below its maxConcurrency. */
  const sendingTo = new Map<string, number>();
  const canSend = (endpointId: string) => (sendingTo.get(endpointId) ?? 0) < (options.maxConcurrencyOf(endpointId) ?? Number.POSITIVE_INFINITY);
  /** Endpoints a look at the table skipped (no room here): their due deliveries may still be in it. */
  const skippedByLook = new Set<string>();
  /** Such an endpoint has room again: the next claim looks at the table (also when a look is under way now). */
  let lookAgain = false;
  /**
   * A place of the endpoint given back: its parked heads are scheduled again. Once it has room and
   * nothing parked, an endpoint a look skipped has the table looked at again.
   */
  const leave = (endpointId: string) => {
    const again = room.leave(endpointId);
    if (again.length > 0) void wake.schedule(again.map((id) => ({ id, endpointId })));
    if (skippedByLook.has(endpointId) && !room.parking(endpointId) && room.roomOf(endpointId) > 0) {
      skippedByLook.delete(endpointId);
      lookAgain = true;
    }
  };

  /**
   * How many deliveries the loop claims now (0: none, it waits). While `ready` holds deliveries that
   * start as soon as a slot frees — every slot is busy, or one of them may go — the next claim waits
   * until half of it is free: fewer, larger claims (not one row each time a slot frees). Those held
   * by their endpoint's maximum do not count while a slot is free: with only them waiting, a claim
   * comes at once, so another endpoint's deliveries are not held with them.
   */
  const wantedNow = () => {
    const room = concurrency - ready.length - reserved;
    return room < Math.ceil(concurrency / 2) && (sending >= concurrency || ready.some((delivery) => canSend(delivery.endpointId))) ? 0 : room;
  };
  /**
   * A slot freed up: the loop is woken when it would claim now. Not otherwise — it would only wait
   * again, and under load that wait (a promise, a timer and an abort listener) came twice a delivery.
   */
  const pokeIfWanted = () => {
    if (wantedNow() > 0) wake.poke();
  };

  /** Attempts that failed here (Postgres away): logged once an outage, not once a delivery. */
  const failures = createAttemptFailureLog(logger);
  const attempt = (delivery: Delivery) => {
    sending += 1;
    sendingTo.set(delivery.endpointId, (sendingTo.get(delivery.endpointId) ?? 0) + 1);
    let sent = false;
    /** Gone to the slow endpoints' share: its slot here went to the next delivery then. */
    let slow = false;
    const onSlow = () => {
      if (sent || slow) return;
      slow = true;
      sending -= 1;
      startReady();
      pokeIfWanted();
    };
    const onSent = () => {
      if (sent) return;
      sent = true;
      if (!slow) sending -= 1;
      const left = (sendingTo.get(delivery.endpointId) ?? 1) - 1;
      if (left > 0) sendingTo.set(delivery.endpointId, left);
      else sendingTo.delete(delivery.endpointId);
      leave(delivery.endpointId);
      startReady();
      pokeIfWanted();
    };
    const end = () => {
      onSent();
      inFlight.delete(task);
      startReady();
      pokeIfWanted();
    };
    // One reaction for either outcome (not then, catch and finally: two promises and two ticks less an attempt).
    const task: Promise<void> = deliverer.deliver(delivery, onSent, onSlow).then(
      ({ nextInLane, retryAt }) => {
        try {
          failures.succeeded();
          if (nextInLane !== undefined) void wake.schedule([{ id: nextInLane, endpointId: delivery.endpointId }]);
          // Retried (or put off) by this loop: it looks for it when it comes due, not up to `idleMs` later
          // (the loop's wait under way is cut short, to be timed anew).
          if (retryAt !== undefined) {
            dueTimer.note(retryAt.getTime());
            wake.poke();
          }
        } catch (error) {
          // Logged as the attempt's failure would be, never a rejection nobody awaits.
          failures.failed(error, delivery.id);
        } finally {
          end();
        }
      },
      // The lease runs out and the delivery is due again: nothing is lost.
      (error: unknown) => {
        failures.failed(error, delivery.id);
        end();
      },
    );
    inFlight.add(task);
  };
  /**
   * Starts ready deliveries, oldest first, while slots are free; one whose endpoint sends its
   * maximum keeps its place. Called whenever a slot frees up, not only by the loop (which may be
   * waiting for a claim): a ready delivery never waits for a claim to start. Never re-entered.
   */
  let starting = false;
  /** Takes `ready[index]` out (the first, nearly always: no array made for it, as `splice` makes). */
  const takeReady = (index: number) => {
    if (index === 0) ready.shift();
    else ready.splice(index, 1);
  };
  const startReady = () => {
    if (starting) return;
    starting = true;
    try {
      for (let index = 0; index < ready.length; ) {
        if (abort.signal.aborted || sending >= concurrency || inFlight.size >= 2 * concurrency) return;
        const delivery = ready[index]!;
        if (now() - (leasedAt.get(delivery) ?? Number.POSITIVE_INFINITY) > MAX_SLOT_WAIT * options.leaseMs) {
          // Too late to start under this lease (slots held long, or its endpoint's maximum lowered):
          // the lease goes back and the delivery is claimed again, under a lease of its own.
          takeReady(index);
          giveBack(delivery);
        } else if (canSend(delivery.endpointId)) {
          takeReady(index);
          attempt(delivery);
        } else index += 1;
      }
    } finally {
      starting = false;
    }
  };

  const giveBack = (delivery: Delivery) => {
    leave(delivery.endpointId);
    const again: Promise<void> = releaseDeliveries(db, [delivery])
      .then(() => wake.schedule([{ id: delivery.id, endpointId: delivery.endpointId }]))
      .catch((error: unknown) => logger.warn({ err: error, delivery: delivery.id }, 'webhook delivery that waited too long not given back; its lease runs out'))
      .finally(() => givingBack.delete(again));
    givingBack.add(again);
  };

  /**
   * New deliveries straight from the routing tap, leased by their insert: within the slots not
   * taken by ready or reserved ones, and the endpoint's share here. Once closing, none is taken,
   * and one stored on a place reserved before has its lease given back.
   */
  const detach = wake.attach({
    leaseMs: options.leaseMs,
    reserve(endpointId, wanted) {
      if (abort.signal.aborted) return 0;
      const places = room.reserve(endpointId, Math.min(wanted, concurrency - ready.length - reserved - claiming));
      reserved += places;
      return places;
    },
    start(deliveries) {
      reserved -= deliveries.length;
      if (abort.signal.aborted) {
        for (const delivery of deliveries) leave(delivery.endpointId);
        const release = releaseDeliveries(db, deliveries)
          .catch((error: unknown) => logger.warn({ err: error }, 'webhook leases not released; they run out'))
          .finally(() => inFlight.delete(release));
        inFlight.add(release);
        return [];
      }
      makeReady(deliveries);
      startReady();
      pokeIfWanted();
      // Taken here: no scheduler needs to hear of them.
      return [];
    },
    release(endpointId, places) {
      reserved -= places;
      for (let place = 0; place < places; place += 1) leave(endpointId);
      pokeIfWanted();
    },
    // `start` hands no scheduler anything: nothing is kept for a job.
    unscheduled: () => [],
  });

  const idleMs = options.idleMs ?? 1_000;
  let lastLook = 0;
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
    if (more > 0 && (dueTimer.takeDue() || backlog || lookAgain || wake.takeOverflowed() || performance.now() - lastLook >= idleMs)) {
      lastLook = performance.now();
      lookAgain = false;
      const skip = room.full();
      for (const endpointId of skip) skippedByLook.add(endpointId);
      let found: Delivery[];
      try {
        found = await claimDue(db, more, options.leaseMs, skip);
      } catch (error) {
        // The deliveries leased by id above hold places here and are sent as usual; the look is
        // retried by the next claim (after the loop's backoff when that one fails too).
        if (due.length === 0) throw error;
        logger.warn({ err: error }, 'webhook deliveries could not be looked for; retrying');
        lookAgain = true;
        return due;
      }
      backlog = found.length === more;
      // Beyond its endpoint's share here: the lease goes back (the delivery stays due) and its id is parked.
      const parked = found.filter((delivery) => !room.admit(delivery.endpointId, delivery.id));
      if (parked.length > 0) await releaseDeliveries(db, parked).catch((error: unknown) => logger.warn({ err: error }, 'webhook leases not given back; they run out'));
      const released = new Set(parked);
      due.push(...found.filter((delivery) => !released.has(delivery)));
    }
    return due;
  };

  const run = async () => {
    const backoff = createBackoff({ initialMs: 200, maxMs: 5_000 });
    while (!abort.signal.aborted) {
      startReady();
      const wanted = wantedNow();
      let claimed = 0;
      if (wanted > 0) {
        claiming = wanted;
        try {
          const due = await claim(wanted);
          claimed = due.length;
          makeReady(due);
          startReady();
          backoff.reset();
        } catch (error) {
          logger.warn({ err: error }, 'webhook deliveries could not be read; retrying');
          await pause(backoff.next(), abort.signal);
          continue;
        } finally {
          claiming = 0;
        }
      }
      // Nothing more to claim for now, or no room for it: until an id is scheduled, a slot frees up,
      // a retry it knows of comes due, or it is time to look.
      if (claimed < wanted || wanted <= 0) await wake.wait(dueTimer.waitMs(idleMs), abort.signal);
    }
  };
  const loop = run();

  return {
    async close() {
      abort.abort();
      detach();
      await loop;
      // Leased but not started: free for the next process at once rather than when the leases run out.
      const unstarted = ready.splice(0);
      await Promise.all([...inFlight, ...givingBack, releaseDeliveries(db, unstarted).catch((error: unknown) => logger.warn({ err: error }, 'webhook leases not released; they run out'))]);
    },
  };
}
