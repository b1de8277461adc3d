/**
 * The IPC contract between the fan-out workload (parent) and its subscriber load client
 * (`fanout-client.ts`, a child process). Types only: both sides import it.
 *
 * A step: `expect` (events from `firstSeq` on count; an earlier one counts only as a second copy) → the parent
 * publishes `firstSeq…lastSeq` → `collect` (wait until every open socket has received every
 * event of the step — or only `lastSeq`, to probe that subscriptions are live — or the timeout)
 * → a `StepReport`.
 */
import type { SubscribePayload } from 'graphql-ws';
import type { FrameCheckName } from './frame-checks.ts';
import type { Summary } from './stats.ts';

export type ClientRequest =
  | {
      readonly type: 'open';
      readonly requestId: number;
      /** `ws://127.0.0.1:port/path` */
      readonly url: string;
      readonly sockets: number;
      /** Handshakes in flight at once. */
      readonly parallel: number;
      /** Socket i sends `subscriptions[i mod length]` once, with id `"0"`, after `connection_ack`. */
      readonly subscriptions: readonly SubscribePayload[];
      /**
       * What every event frame must be (`frame-checks.ts`): its beginning checked on every frame,
       * the whole on a sample (`expect`'s `checkEvery`). @default none (frames are not checked)
       */
      readonly frameCheck?: FrameCheckName;
      /**
       * Frames containing this text are dropped unread (e.g. `"SNAPSHOT"`: a `document`
       * subscription's first message, the state before any event). @default none
       */
      readonly ignore?: string;
      /**
       * Topics the events are spread over: socket i subscribes to topic `i mod topics` and
       * expects the events whose `seq mod topics` is that (see `fanout-ledger.ts`). @default 1
       */
      readonly topics?: number;
      /**
       * `connection_init` payloads, socket i sending `connectionPayloads[i mod length]` (e.g. a
       * token per topic's tenant). @default [{}]
       */
      readonly connectionPayloads?: readonly Readonly<Record<string, unknown>>[];
    }
  | {
      readonly type: 'expect';
      readonly requestId: number;
      readonly firstSeq: number;
      /** Every how many frames one is matched whole against the frame check (1: every one, while probing). */
      readonly checkEvery: number;
    }
  | {
      readonly type: 'collect';
      readonly requestId: number;
      readonly lastSeq: number;
      /** `every`: wait for every event of the step on every socket; `last`: for `lastSeq` only. */
      readonly until: 'every' | 'last';
      readonly timeoutMs: number;
    }
  | { readonly type: 'close'; readonly requestId: number };

export type ClientReply =
  | { readonly type: 'opened'; readonly requestId: number; readonly sockets: number }
  | { readonly type: 'expecting'; readonly requestId: number }
  | { readonly type: 'collected'; readonly requestId: number; readonly report: StepReport }
  | { readonly type: 'closed'; readonly requestId: number }
  | { readonly type: 'failed'; readonly requestId: number; readonly message: string };

/** What the subscribers saw of the events `firstSeq…lastSeq`. */
export interface StepReport {
  /** Sockets opened and subscribed. */
  readonly sockets: number;
  /** Of those, still open. */
  readonly open: number;
  /** Sockets that have received `lastSeq`. */
  readonly sawLast: number;
  /**
   * Sockets that received every event of the step exactly once (in whatever order), and no second
   * copy of an earlier step's event meanwhile.
   */
  readonly complete: number;
  /** Distinct events of the step received, all sockets together. */
  readonly received: number;
  /** Events of the step never received, all sockets together. */
  readonly missing: number;
  /**
   * Copies of an event a socket had received before, arriving during the step, all sockets
   * together: of the step's events, and of earlier steps' (`lateDuplicates`) — a retry or replay
   * that comes after its own step was collected is counted here, not dropped.
   */
  readonly duplicates: number;
  /** Of `duplicates`, second copies of an earlier step's event. */
  readonly lateDuplicates: number;
  /** Events that arrived after one with a higher seq, all sockets together. */
  readonly outOfOrder: number;
  /**
   * Distinct arrival orders among the complete sockets (1: every subscriber saw the events in
   * the same order). With several publishes in flight, their order is the server's to choose,
   * but it must be one order for the whole topic.
   */
  readonly orders: number;
  /** Events of the step received by a socket whose topic they are not on (see `open`'s `topics`): a leak. */
  readonly misrouted: number;
  /** Frames of the step that were not what the frame check expects (not booked as received). */
  readonly mismatched: number;
  /** Of those frames, the first, with why. */
  readonly firstMismatch: string | undefined;
  /** Frames of the step matched whole against the frame check. */
  readonly checked: number;
  /** Close code and reason → sockets the server closed, since they were opened. */
  readonly closes: Readonly<Record<string, number>>;
  /** `error` / `complete` messages for the subscription, the first few. */
  readonly operationEnds: readonly string[];
  /** `clockMillis()` of the first and the last event of the step received; NaN when none. */
  readonly firstReceiptAt: number;
  readonly lastReceiptAt: number;
  /** Receipt time − `sentAt`, in µs; undefined when nothing was received. */
  readonly latency: Summary | undefined;
  /** This client's CPU (user + system) since `expect`, in µs. */
  readonly clientCpuMicros: number;
  /** The timeout passed before every open socket had seen `lastSeq`. */
  readonly timedOut: boolean;
}
