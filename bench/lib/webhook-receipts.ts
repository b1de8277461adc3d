/**
 * The webhook receivers' bookkeeping, apart from their HTTP servers (`webhook-receivers.ts` feeds
 * it every request body): per step, which receiver got which event (`seq` read from the raw body),
 * once or again, at the receiver meant for it or not, and how long after its `sentAt`. No I/O.
 *
 * The run hands out sequence numbers once (`takeSeq` in the workload): no two steps share one, so
 * every step is kept for the whole run and a request is booked against the step its event belongs
 * to, whenever it arrives. A sender's retry comes after a backoff (Tributary's first: about a
 * second), usually after its step was collected and often in another sender's step: it is still a
 * second copy of its own step's event, counted there as a late duplicate (`late()`), never taken
 * for a stray request of the step under way.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { clockMillis, readDelivery, type Delivery } from './fanout-payload.ts';
import { recordMillis, summarize } from './stats.ts';
import type { LateCopies, LateReport, ReceiverReport, StepPlan, WarmUp } from './webhook-receiver-protocol.ts';

export interface ReceiptBookOptions {
  /** The clock arrivals are stamped with, in ms. @default clockMillis */
  readonly now?: () => number;
  /** This process's CPU time so far, in µs. @default process.cpuUsage(), user + system */
  readonly cpuMicros?: () => number;
  /** Called when the step under way has every delivery it expects. */
  readonly onComplete?: () => void;
  /** Called when the step under way has its warm-up deliveries. */
  readonly onWarm?: () => void;
}

export interface ReceiptBook {
  /** Starts a step; its events must all be above every earlier step's (sequence numbers are the run's). */
  expect(plan: StepPlan): void;
  /** Books one request's body, received by `receiver`. */
  book(receiver: number, body: Buffer): void;
  /** Only the first `sent` events of the step under way were sent (a step cut short): expect those. */
  limit(sent: number): void;
  /** Deliveries of the step under way received so far, and how many it expects. */
  progress(): { received: number; expected: number };
  /** The step under way has every delivery it expects. */
  complete(): boolean;
  /** When the step's warm-up was complete; undefined until it is. */
  warm(): WarmUp | undefined;
  /** The step under way as it stands; from now on, a copy that arrives for it is a late one. */
  report(): ReceiverReport;
  /** Every step that got a copy after it was reported or followed by the next, and the run's stray requests. */
  late(): LateReport;
}

interface Step {
  readonly firstSeq: number;
  /** Events of the step as planned (the size of `seen`). */
  readonly planned: number;
  /** Events expected per receiver: `planned`, or fewer when `limit` says fewer were sent. */
  count: number;
  readonly receivers: number;
  readonly spread: boolean;
  readonly sender: string;
  /** Per receiver, per event of the step: 1 once received. */
  readonly seen: Uint8Array[];
  readonly latency: RecordableHistogram;
  received: number;
  duplicates: number;
  misrouted: number;
  stray: number;
  firstAt: number;
  lastAt: number;
  bodyBytes: number;
  requests: number;
  readonly cpuStart: number;
  readonly warmup: number;
  warm: WarmUp | undefined;
  /** Reported (or followed by the next step): what arrives for it from now on is late. */
  closed: boolean;
  /** Complete when it was reported. */
  completeWhenReported: boolean;
  lateDuplicates: number;
  lateMisrouted: number;
}

const processCpuMicros = () => {
  const cpu = process.cpuUsage();
  return cpu.user + cpu.system;
};

export function createReceiptBook(options: ReceiptBookOptions = {}): ReceiptBook {
  const now = options.now ?? clockMillis;
  const cpuMicros = options.cpuMicros ?? processCpuMicros;
  /** Every step of the run, in `firstSeq` order. */
  const steps: Step[] = [];
  let current: Step | undefined;
  /** Requests of no step, or unreadable, over the run. */
  let stray = 0;
  const scratch: Delivery = { seq: 0, sentAt: 0 };

  const receiverOf = (step: Step, seq: number) => seq % step.receivers;
  /** Deliveries the step is complete with: one per event when spread, one per event and receiver otherwise. */
  const expectedOf = (step: Step) => (step.spread ? step.count : step.count * step.receivers);
  const warmedUp = (step: Step, at: number) => {
    step.warm = { at, cpuMicros: cpuMicros() - step.cpuStart };
    if (step === current) options.onWarm?.();
  };
  const currentStep = (what: string): Step => {
    if (!current) throw new Error(`${what} before expect`);
    return current;
  };

  /** The step event `seq` belongs to (binary search: the steps are in `firstSeq` order). */
  function stepOf(seq: number): Step | undefined {
    let low = 0;
    let high = steps.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const step = steps[middle]!;
      if (seq < step.firstSeq) high = middle - 1;
      else if (seq >= step.firstSeq + step.planned) low = middle + 1;
      else return step;
    }
    return undefined;
  }

  function missingOf(step: Step): number {
    let missing = 0;
    if (step.spread) {
      for (let index = 0; index < step.count; index += 1) if (step.seen[receiverOf(step, step.firstSeq + index)]?.[index] === 0) missing += 1;
    } else {
      for (const seen of step.seen) for (let index = 0; index < step.count; index += 1) if (seen[index] === 0) missing += 1;
    }
    return missing;
  }

  return {
    expect(plan) {
      const previous = steps.at(-1);
      if (previous && plan.firstSeq < previous.firstSeq + previous.planned) {
        throw new Error(`a step from ${plan.firstSeq} overlaps the one from ${previous.firstSeq}: sequence numbers are the run's, each used once`);
      }
      if (current) current.closed = true;
      const step: Step = {
        firstSeq: plan.firstSeq,
        planned: plan.count,
        count: plan.count,
        receivers: plan.receivers,
        spread: plan.spread ?? false,
        sender: plan.sender ?? 'unnamed',
        seen: Array.from({ length: plan.receivers }, () => new Uint8Array(plan.count)),
        latency: createHistogram(),
        received: 0,
        duplicates: 0,
        misrouted: 0,
        stray: 0,
        firstAt: Number.NaN,
        lastAt: Number.NaN,
        bodyBytes: 0,
        requests: 0,
        cpuStart: cpuMicros(),
        warmup: plan.warmup ?? 0,
        warm: undefined,
        closed: false,
        completeWhenReported: false,
        lateDuplicates: 0,
        lateMisrouted: 0,
      };
      steps.push(step);
      current = step;
      if (step.warmup === 0) warmedUp(step, now());
    },

    book(receiver, body) {
      const at = now();
      const step = current;
      if (!step) return;
      step.requests += 1;
      step.bodyBytes += body.length;
      const owner = readDelivery(body, scratch) ? stepOf(scratch.seq) : undefined;
      const seen = owner?.seen[receiver];
      if (!owner || !seen) {
        // Unreadable, of no step, or at a receiver its step did not expect.
        step.stray += 1;
        stray += 1;
        return;
      }
      const index = scratch.seq - owner.firstSeq;
      if (owner.spread && receiverOf(owner, scratch.seq) !== receiver) {
        // An endpoint got an event whose topic it does not select: not this receiver's delivery.
        owner.misrouted += 1;
        if (owner.closed) owner.lateMisrouted += 1;
        return;
      }
      if (seen[index] === 1) {
        owner.duplicates += 1;
        if (owner.closed) owner.lateDuplicates += 1;
        return;
      }
      seen[index] = 1;
      // A first copy of an earlier step's event (its step timed out first): booked, so a second one
      // counts; it is not the step under way's.
      if (owner !== step) return;
      step.received += 1;
      if (Number.isNaN(step.firstAt)) step.firstAt = at;
      step.lastAt = at;
      recordMillis(step.latency, at - scratch.sentAt);
      if (step.received === step.warmup) warmedUp(step, at);
      if (step.received === expectedOf(step)) options.onComplete?.();
    },

    limit(sent) {
      const step = currentStep('limit');
      // Events are sent in seq order: those never sent are the last ones of the range.
      if (sent < step.count) step.count = sent;
    },

    progress() {
      return current ? { received: current.received, expected: expectedOf(current) } : { received: 0, expected: 0 };
    },

    complete() {
      return current !== undefined && current.received >= expectedOf(current);
    },

    warm() {
      return currentStep('warmed').warm;
    },

    report() {
      const step = currentStep('collect');
      const missing = missingOf(step);
      step.closed = true;
      step.completeWhenReported = missing === 0;
      return {
        receivers: step.receivers,
        received: step.received,
        missing,
        duplicates: step.duplicates,
        misrouted: step.misrouted,
        stray: step.stray,
        latency: summarize(step.latency),
        firstAt: step.firstAt,
        lastAt: step.lastAt,
        meanBodyBytes: step.requests === 0 ? Number.NaN : step.bodyBytes / step.requests,
        cpuMicros: cpuMicros() - step.cpuStart,
        complete: missing === 0,
      };
    },

    late() {
      const lateSteps: LateCopies[] = steps
        .filter((step) => step.lateDuplicates > 0 || step.lateMisrouted > 0)
        .map((step) => ({
          sender: step.sender,
          firstSeq: step.firstSeq,
          count: step.planned,
          complete: step.completeWhenReported,
          duplicates: step.lateDuplicates,
          misrouted: step.lateMisrouted,
        }));
      return { steps: lateSteps, stray };
    },
  };
}
