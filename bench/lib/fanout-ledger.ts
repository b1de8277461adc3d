/**
 * The fan-out load client's bookkeeping, apart from its sockets: per subscriber, which events
 * arrived (a bitmap over the whole run), and per step how many twice, how many after a later one,
 * a hash of the arrival order, and the latency of each. No I/O; the client feeds it frames.
 *
 * Sequence numbers are unique per ledger (a session numbers its events from 1 on), so the record
 * of what arrived is kept for the run, not per step: a second copy of an event is a duplicate
 * whenever it comes — a retry or a replay that lands after its step was collected is counted in
 * the step it arrives in (`lateDuplicates`), not lost as a leftover from before the step.
 *
 * A step starts with `expect(firstSeq)`; `collect(lastSeq, until)` fixes its end and resolves once
 * every account is done — `every`: it has every event of the step, `last`: it has `lastSeq` —
 * or closed, or the timeout passed. Done-ness is counted as it changes, so a frame costs O(1).
 *
 * With a frame check, a frame is booked only if its beginning is what the check expects, and one
 * frame in `checkEvery` (every one while probing) is matched whole first: a frame that fails is not
 * booked but counted as `mismatched`, the first kept with why (see `frame-checks.ts`).
 *
 * Events may be spread over topics (the `cdc` workload: one topic per tenant): with `topics`
 * T, event `seq` is on topic `seq mod T`, and an account opened for topic k expects only the
 * events of its topic — "every event" and "the last event" of a step are then its topic's.
 */
import { clockMillis, readDelivery, type Delivery } from './fanout-payload.ts';
import type { StepReport } from './fanout-protocol.ts';
import { hasPrefix, type FrameCheck } from './frame-checks.ts';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { recordMillis, summarize } from './stats.ts';

/** One subscriber's account; opaque outside this module. */
export interface Account {
  /** Topics the events are spread over (1: every event is for every account). */
  readonly topics: number;
  /** This account's topic: it receives the events whose `seq mod topics` is this. */
  readonly topic: number;
  /** Events of the step on this account's topic; Infinity until `collect`. */
  expected: number;
  /** The step's last event on this account's topic; Infinity until `collect`. */
  lastSeq: number;
  /** Bit `seq`: event `seq` was received, in any step of the run. Grows as needed. */
  seen: Uint8Array;
  /** Distinct events of the step. */
  received: number;
  /** Copies of an event received before, arriving in this step (the late ones included). */
  duplicates: number;
  /** Of those, copies of an earlier step's event. */
  lateDuplicates: number;
  /** Arrivals below the highest seq already received. */
  outOfOrder: number;
  highest: number;
  /** A hash of the arrival order: equal for accounts that received the same events in the same order. */
  order: number;
  done: boolean;
  closed: boolean;
}

export interface DeliveryLedger {
  /** An account for topic `topic` of `topics` (default: the one topic every event is on). */
  open(topics?: number, topic?: number): Account;
  /** Books one frame; false when it carries no event (the caller deals with it). */
  record(account: Account, frame: Buffer): boolean;
  /** The account's socket is gone: it counts as done from now on. */
  close(account: Account): void;
  /**
   * Starts a step: events from `firstSeq` on are counted; an earlier one arriving now is booked for
   * the run (a first copy: a backlog still draining) or counted as a duplicate (a second copy).
   * With a frame check, one frame in `checkEvery` is matched whole. @default checkEvery 1
   */
  expect(firstSeq: number, checkEvery?: number): void;
  /** Ends the step at `lastSeq` and waits (at most `timeoutMs`) until every account is done; true if the wait timed out. */
  collect(lastSeq: number, until: 'every' | 'last', timeoutMs: number): Promise<boolean>;
  /** An `error`/`complete` (or an event-less `next`) for the subscription, kept (the first few) for the report. */
  noteOperationEnd(text: string): void;
  report(extra: Pick<StepReport, 'closes' | 'clientCpuMicros' | 'timedOut'>): StepReport;
}

export interface LedgerOptions {
  /** What every event frame must be. @default none: any frame with `"seq":` and `"sentAt":` is booked */
  readonly check?: FrameCheck;
}

/** Operation ends kept per step. */
const MAX_OPERATION_ENDS = 5;

interface Step {
  readonly firstSeq: number;
  /** Infinity until `collect`. */
  lastSeq: number;
  until: 'every' | 'last';
  readonly latency: RecordableHistogram;
  received: number;
  misrouted: number;
  mismatched: number;
  firstMismatch: string | undefined;
  /** Frames matched whole, and the frames until the next one is. */
  checked: number;
  readonly checkEvery: number;
  untilCheck: number;
  done: number;
  firstReceiptAt: number;
  lastReceiptAt: number;
  readonly operationEnds: string[];
  /** Set while `collect` waits. */
  onAllDone: (() => void) | undefined;
}

export function createDeliveryLedger(options: LedgerOptions = {}): DeliveryLedger {
  const { check } = options;
  const accounts: Account[] = [];
  const delivery: Delivery = { seq: 0, sentAt: 0 };
  let step = newStep(0, 1);

  /** Why the frame of event `seq` is not what the check expects (sampled whole); undefined when it is, or unchecked. */
  const mismatchOf = (frame: Buffer, seq: number): string | undefined => {
    if (!check) return undefined;
    if (!hasPrefix(check, frame)) return check.mismatch(frame, seq) ?? 'the frame does not begin as expected';
    step.untilCheck -= 1;
    if (step.untilCheck > 0) return undefined;
    step.untilCheck = step.checkEvery;
    step.checked += 1;
    return check.mismatch(frame, seq);
  };

  /** Event `seq` of the current step was received (an earlier step's never counts). */
  const hasSeen = (account: Account, seq: number) => seq >= step.firstSeq && ((account.seen[seq >> 3] ?? 0) & (1 << (seq & 7))) !== 0;
  const isDone = (account: Account) =>
    account.closed || (step.until === 'every' ? account.received >= account.expected : hasSeen(account, account.lastSeq));
  const markDone = (account: Account) => {
    if (account.done) return;
    account.done = true;
    step.done += 1;
    if (step.done === accounts.length) step.onAllDone?.();
  };

  return {
    open(topics = 1, topic = 0) {
      if (!Number.isInteger(topics) || topics < 1 || !Number.isInteger(topic) || topic < 0 || topic >= topics) {
        throw new Error(`ledger: topic ${topic} of ${topics} is not a topic`);
      }
      const account: Account = {
        topics,
        topic,
        expected: Number.POSITIVE_INFINITY,
        lastSeq: Number.POSITIVE_INFINITY,
        seen: new Uint8Array(64), received: 0, duplicates: 0, lateDuplicates: 0, outOfOrder: 0, highest: -1, order: 0, done: false, closed: false };
      accounts.push(account);
      return account;
    },
    record(account, frame) {
      if (!readDelivery(frame, delivery)) return false;
      const now = clockMillis();
      const { seq } = delivery;
      const mismatch = mismatchOf(frame, seq);
      if (mismatch !== undefined) {
        step.mismatched += 1;
        step.firstMismatch ??= mismatch;
        return true;
      }
      if (account.topics > 1 && (seq - account.topic) % account.topics !== 0) {
        // Another topic's event (another tenant's row, in `cdc`), whichever step it is of: never delivered here.
        step.misrouted += 1;
        return true;
      }
      const byte = seq >> 3;
      const bit = 1 << (seq & 7);
      if (byte >= account.seen.length) account.seen = grow(account.seen, byte + 1);
      const early = seq < step.firstSeq;
      if ((account.seen[byte]! & bit) !== 0) {
        account.duplicates += 1;
        if (early) account.lateDuplicates += 1;
        return true;
      }
      account.seen[byte]! |= bit;
      // A first copy of an earlier step's event: a backlog from before the step, still draining.
      if (early) return true;
      account.received += 1;
      if (seq < account.highest) account.outOfOrder += 1;
      else account.highest = seq;
      account.order = (Math.imul(account.order, 31) + seq) | 0;
      step.received += 1;
      recordMillis(step.latency, now - delivery.sentAt);
      if (step.received === 1) step.firstReceiptAt = now;
      step.lastReceiptAt = now;
      if (!account.done && (step.until === 'every' ? account.received >= account.expected : seq === account.lastSeq)) markDone(account);
      return true;
    },
    close(account) {
      account.closed = true;
      markDone(account);
    },
    expect(firstSeq, checkEvery = 1) {
      step = newStep(firstSeq, checkEvery);
      for (const account of accounts) {
        account.received = 0;
        account.duplicates = 0;
        account.lateDuplicates = 0;
        account.outOfOrder = 0;
        account.highest = -1;
        account.order = 0;
        account.done = false;
        account.expected = Number.POSITIVE_INFINITY;
        account.lastSeq = Number.POSITIVE_INFINITY;
      }
    },
    async collect(lastSeq, until, timeoutMs) {
      const current = step;
      current.lastSeq = lastSeq;
      current.until = until;
      current.done = 0;
      for (const account of accounts) {
        account.done = false;
        account.lastSeq = lastOnTopic(lastSeq, account);
        account.expected = account.lastSeq < current.firstSeq ? 0 : Math.floor((account.lastSeq - current.firstSeq) / account.topics) + 1;
      }
      for (const account of accounts) if (isDone(account)) markDone(account);
      if (current.done === accounts.length) return false;
      const timedOut = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), timeoutMs);
        current.onAllDone = () => {
          clearTimeout(timer);
          resolve(false);
        };
      });
      current.onAllDone = undefined;
      return timedOut;
    },
    noteOperationEnd(text) {
      if (step.operationEnds.length < MAX_OPERATION_ENDS) step.operationEnds.push(text);
    },
    report(extra) {
      let complete = 0;
      let sawLast = 0;
      let missing = 0;
      let duplicates = 0;
      let lateDuplicates = 0;
      let outOfOrder = 0;
      const orders = new Set<number>();
      for (const account of accounts) {
        missing += account.expected - account.received;
        duplicates += account.duplicates;
        lateDuplicates += account.lateDuplicates;
        outOfOrder += account.outOfOrder;
        if (hasSeen(account, account.lastSeq)) sawLast += 1;
        if (account.received === account.expected && account.duplicates === 0) {
          complete += 1;
          orders.add(account.order);
        }
      }
      return {
        sockets: accounts.length,
        open: accounts.filter((account) => !account.closed).length,
        sawLast,
        complete,
        received: step.received,
        missing,
        duplicates,
        lateDuplicates,
        outOfOrder,
        orders: orders.size,
        misrouted: step.misrouted,
        mismatched: step.mismatched,
        firstMismatch: step.firstMismatch,
        checked: step.checked,
        operationEnds: [...step.operationEnds],
        firstReceiptAt: step.firstReceiptAt,
        lastReceiptAt: step.lastReceiptAt,
        latency: summarize(step.latency),
        ...extra,
      };
    },
  };
}

function newStep(firstSeq: number, checkEvery: number): Step {
  const every = Math.max(1, Math.floor(checkEvery));
  return {
    firstSeq,
    lastSeq: Number.POSITIVE_INFINITY,
    until: 'every',
    latency: createHistogram(),
    received: 0,
    misrouted: 0,
    mismatched: 0,
    firstMismatch: undefined,
    checked: 0,
    checkEvery: every,
    // The first frame of every step is matched whole.
    untilCheck: 1,
    done: 0,
    firstReceiptAt: Number.NaN,
    lastReceiptAt: Number.NaN,
    operationEnds: [],
    onAllDone: undefined,
  };
}

/** The highest seq ≤ `lastSeq` on the account's topic. */
function lastOnTopic(lastSeq: number, account: Pick<Account, 'topics' | 'topic'>): number {
  return lastSeq - ((((lastSeq - account.topic) % account.topics) + account.topics) % account.topics);
}

function grow(bits: Uint8Array, atLeast: number): Uint8Array {
  const grown = new Uint8Array(Math.max(atLeast, bits.length * 2));
  grown.set(bits);
  return grown;
}
