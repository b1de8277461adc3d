/**
 * The IPC contract between the `webhooks` workload (parent) and its receivers
 * (`webhook-receivers.ts`, a child process holding N HTTP servers on loopback). Types only: both
 * sides import it.
 *
 * A step: `expect` (receivers 0…k−1 are to get every event `firstSeq … firstSeq + count − 1`;
 * with `spread`, event `seq` is for receiver `seq % k` only) → the parent makes the events happen
 * (published to Tributary, a queue drained, a POST loop) → `collect` (wait until every expecting
 * receiver has every event of the step meant for it, or the timeout) → a `ReceiverReport`.
 * A step may start with a warm-up: `warmed` answers when its first `warmup` deliveries are in, with
 * that moment and the receivers' CPU then, so a rate can be measured over the rest only.
 *
 * Sequence numbers are the run's, each in one step: a copy arriving after its step was collected
 * (a retry after its backoff, maybe in another sender's step) is booked against its own step, and
 * `late` lists every step that got such copies, by sender (see `webhook-receipts.ts`).
 */
import type { Summary } from './stats.ts';

/** A step the receivers expect (`expect`). */
export interface StepPlan {
  readonly firstSeq: number;
  /** Events of the step: `firstSeq … firstSeq + count − 1`. */
  readonly count: number;
  /** Receivers 0…receivers−1 expect the step's events. */
  readonly receivers: number;
  /** Event `seq` is for receiver `seq % receivers` only (each event one delivery). @default false: every receiver gets every event */
  readonly spread?: boolean;
  /** Deliveries of the step that warm the sender up: `warmed` answers once this many are in. @default 0 */
  readonly warmup?: number;
  /** Who sends the step's events (a mode, a baseline): what `late` names. @default 'unnamed' */
  readonly sender?: string;
}

export type ReceiverRequest =
  | { readonly type: 'listen'; readonly requestId: number; readonly receivers: number }
  | ({ readonly type: 'expect'; readonly requestId: number } & StepPlan)
  | { readonly type: 'progress'; readonly requestId: number }
  /** Waits (at most `timeoutMs`) until the step's warm-up deliveries are in. */
  | { readonly type: 'warmed'; readonly requestId: number; readonly timeoutMs: number }
  | {
      readonly type: 'collect';
      readonly requestId: number;
      readonly timeoutMs: number;
      /** Only the first `sent` events of the step were sent after all (a step cut short): expect those. @default all */
      readonly sent?: number;
    }
  /** Every step that got a copy after it was collected, and the run's stray requests. */
  | { readonly type: 'late'; readonly requestId: number }
  | { readonly type: 'close'; readonly requestId: number };

export interface ReceiverReport {
  /** Receivers that expected the step's events. */
  readonly receivers: number;
  /** Events of the step received, counted once per receiver (at most `count × receivers`; `count` when spread). */
  readonly received: number;
  /** Deliveries of the step not received: (event, receiver meant for it) pairs still missing by the time of the report. */
  readonly missing: number;
  /** Requests carrying an event of the step a receiver had already got (so far: later ones are in `late`). */
  readonly duplicates: number;
  /** Spread steps: requests carrying an event of the step meant for another receiver (neither received nor missing). */
  readonly misrouted: number;
  /** Requests during the step carrying no event of any step, or at a receiver the event's step did not expect, or unreadable. */
  readonly stray: number;
  /** `sentAt` (in the payload) → the request's body fully read, in µs; events of the step only, first receipt. */
  readonly latency: Summary | undefined;
  /** `clockMillis()` of the step's first and last receipt (NaN without any). */
  readonly firstAt: number;
  readonly lastAt: number;
  /** Mean body size of the step's requests, in bytes. */
  readonly meanBodyBytes: number;
  /** The receivers' process CPU since `expect`, in µs. */
  readonly cpuMicros: number;
  /** Every expecting receiver got every event of the step meant for it. */
  readonly complete: boolean;
}

/** The moment a step's warm-up was complete: its last warm-up delivery booked. */
export interface WarmUp {
  /** `clockMillis()` then. */
  readonly at: number;
  /** The receivers' process CPU from `expect` to then, in µs. */
  readonly cpuMicros: number;
}

/** The copies one step got after it was collected (or followed by the next step). */
export interface LateCopies {
  /** Who sent the step's events (`expect`'s `sender`). */
  readonly sender: string;
  readonly firstSeq: number;
  readonly count: number;
  /** The step was complete when it was collected (false: cut short, its server maybe stopped with a backlog). */
  readonly complete: boolean;
  /** Second copies of the step's events, at the receiver that had the first. */
  readonly duplicates: number;
  /** Spread steps: the step's events at a receiver they were not meant for. */
  readonly misrouted: number;
}

export interface LateReport {
  /** Steps with any late copy, in run order. */
  readonly steps: readonly LateCopies[];
  /** Requests of the run carrying no event of any step, at a receiver the event's step did not expect, or unreadable. */
  readonly stray: number;
}

export type ReceiverReply =
  | { readonly type: 'listening'; readonly requestId: number; readonly urls: readonly string[] }
  | { readonly type: 'expecting'; readonly requestId: number }
  | { readonly type: 'progress'; readonly requestId: number; readonly received: number; readonly expected: number }
  | { readonly type: 'warmed'; readonly requestId: number; readonly warm: WarmUp }
  | { readonly type: 'collected'; readonly requestId: number; readonly report: ReceiverReport }
  | { readonly type: 'late'; readonly requestId: number; readonly late: LateReport }
  | { readonly type: 'closed'; readonly requestId: number }
  | { readonly type: 'failed'; readonly requestId: number; readonly message: string };
