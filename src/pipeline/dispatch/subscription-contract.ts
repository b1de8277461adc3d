/**
 * The subscription contract: how a dispatched subscription travels from its GraphQL field to a
 * socket. Every part of it is defined here, once:
 *
 * 1. **Ticket.** A dispatched field's `subscribe` resolver returns a `DispatchTicket` (the stream,
 *    its filter, the resume point, an optional snapshot and admission) instead of an iterator.
 * 2. **Dispatcher.** The transport hands the ticket to the dispatcher with a `CohortSpec`:
 *    subscribers of one stream with equal cohort keys share filtering and rendering.
 * 3. **Render.** Once per event per cohort, `CohortSpec.render` turns the event into the `next`
 *    payload. The transport builds it with `cohortRenderer`, which enforces THE RULE below.
 * 4. **Sink.** The same `Rendered` payload goes to each member's `SubscriberSink`; a replay of
 *    the log waits for the sink (`drained`) rather than outrun its socket.
 *
 * THE RULE. Fields selected under a dispatched subscription are rendered once for a whole cohort:
 * they must depend on the event and the field arguments only — never on the context (it would be
 * one subscriber's principal, shown to all) — and they must resolve synchronously (the fan-out
 * renders inline, not per subscriber). Schema types delivered this way refer here instead of
 * restating it; `cohortRenderer` is the one place it is checked, at run time, for every render.
 */
import type { Principal } from '../../auth/principal.ts';
import { InternalError, type TributaryError } from '../../errors.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import type { StreamRef } from '../stream.ts';
import type { EventPredicate } from '../filters/event-filter.ts';

/**
 * A per-subscriber check of each event, after the cohort rendered it once: deliver it, skip it
 * (a snapshot already holds it) or end the subscription with RESYNC_REQUIRED (it reveals a gap).
 */
export type Admission = (event: RealtimeEvent) => 'deliver' | 'skip' | 'resync';

const TICKET: unique symbol = Symbol('tributary.dispatchTicket');

/**
 * What a dispatched subscription field returns: the stream, filter and resume point, for the
 * transport to hand to the dispatcher with its cohort. Recognised with `isDispatchTicket`.
 *
 * It carries `Symbol.asyncIterator` only because graphql-js refuses a subscription field whose
 * source is not async-iterable; iterating it is a fault (only the WebSocket transport serves
 * dispatched subscriptions, and it never iterates).
 */
export interface DispatchTicket extends AsyncIterable<never> {
  readonly [TICKET]: true;
  readonly stream: StreamRef;
  readonly filter: EventPredicate | undefined;
  /** Resume after this cursor; live from now when absent. */
  readonly after: string | undefined;
  /**
   * The principal may not read this stream: the subscription stays open and receives nothing,
   * indistinguishable from a quiet stream (no enumeration of what exists).
   */
  readonly denied: boolean;
  /** Delivered first, before anything from the stream (a snapshot). */
  readonly initial: RealtimeEvent | undefined;
  /** Per-subscriber admission of each event. */
  readonly admit: Admission | undefined;
  /**
   * Whether a principal may go on reading this stream — every check its `subscribe` made of the
   * principal (permissions, roles), asked again when the socket's token is refreshed
   * (`refreshAuth`); a subscription it refuses is ended. Required, so that no subscription can
   * forget it and outlive a revoked permission.
   */
  readonly readableBy: (principal: Principal) => boolean;
  /**
   * Asked before the dispatcher joins a stream this instance does not hold yet (its join creates
   * the stream in the log when it has no history): a rejection ends the subscription with it. For
   * the subject's budget of new streams (`subject-limits.ts`). @default none
   */
  readonly beforeNewStream: (() => Promise<void>) | undefined;
}

export interface DispatchTicketInit {
  readonly stream: StreamRef;
  readonly filter: EventPredicate | undefined;
  readonly after: string | undefined;
  readonly denied: boolean;
  readonly initial?: RealtimeEvent | undefined;
  readonly admit?: Admission | undefined;
  /** @see DispatchTicket.readableBy */
  readonly readableBy: (principal: Principal) => boolean;
  /** @see DispatchTicket.beforeNewStream */
  readonly beforeNewStream?: (() => Promise<void>) | undefined;
}

export function dispatchTicket(init: DispatchTicketInit): DispatchTicket {
  return Object.freeze({
    [TICKET]: true as const,
    stream: init.stream,
    filter: init.filter,
    after: init.after,
    denied: init.denied,
    initial: init.initial,
    admit: init.admit,
    readableBy: init.readableBy,
    beforeNewStream: init.beforeNewStream,
    [Symbol.asyncIterator](): AsyncIterator<never> {
      throw new InternalError('DISPATCH_TICKET_ITERATED', 'A dispatched subscription is served by the dispatcher, not iterated');
    },
  });
}

export function isDispatchTicket(value: unknown): value is DispatchTicket {
  return typeof value === 'object' && value !== null && (value as Partial<DispatchTicket>)[TICKET] === true;
}

/** An event rendered for a cohort: one per event per cohort, handed to every member's sink. */
export interface Rendered {
  /** The `next` payload (an execution result) as JSON. */
  readonly json: string;
  /** The transport's encoding of `json`, made by the first sink that needs it and shared. */
  utf8?: Buffer;
}

/** Where a subscriber's messages go; implemented by the transport. */
export interface SubscriberSink {
  /** One `next` message with this payload. */
  next(payload: Rendered): void;
  /** Ends the subscription with an error; the dispatcher has already forgotten the subscriber. */
  fail(error: TributaryError): void;
  /**
   * Whether a replay may write on: undefined while the sink takes more at once, else a promise
   * that resolves once it has passed on what it holds, or is gone (it never rejects). Replays of
   * the log (a resume, a recovery) wait on it between events; written without waiting, a backlog
   * larger than the socket's slow-consumer bound closes even a client that reads as fast as it
   * can. Live events never wait: a client that cannot keep up with them is closed and resumes.
   */
  drained(): Promise<void> | undefined;
}

/** Renders one event to the `next` payload JSON, under THE RULE. */
export type CohortRender = (event: RealtimeEvent) => string;

export interface CohortSpec {
  /** Subscribers of one stream with equal keys share filtering and rendering. */
  readonly key: string;
  readonly filter: EventPredicate | undefined;
  /** Called once per event per cohort; made with `cohortRenderer`. */
  readonly render: CohortRender;
}

/**
 * Builds a cohort's render from the transport's execution of the selection: `execute` receives
 * the event and a context that must not be read, and must answer synchronously. A render that
 * breaks THE RULE throws an InternalError (the dispatcher logs it and drops the event for that
 * cohort) instead of sending one subscriber's view to all, or a pending promise to none.
 */
export function cohortRenderer<R>(
  execute: (event: RealtimeEvent, context: object) => R | PromiseLike<R>,
  serialize: (result: R) => string,
): CohortRender {
  return (event) => {
    contextUse = undefined;
    const result = execute(event, FORBIDDEN_CONTEXT);
    const used = contextUse as string | undefined; // set by `refuse` during `execute`
    if (used !== undefined) {
      throw new InternalError('SUBSCRIPTION_CONTRACT', `a dispatched subscription field read the context (${used})`);
    }
    if (isThenable(result)) {
      // Nobody awaits it: its outcome must not surface as an unhandled rejection.
      Promise.resolve(result).catch(() => undefined);
      throw new InternalError('SUBSCRIPTION_CONTRACT', 'a dispatched subscription field resolved asynchronously');
    }
    return serialize(result);
  };
}

/**
 * The context every render gets: any use of it is recorded in `contextUse` and fails the resolver
 * that tried. One object for all renders (the hot path allocates nothing for the check): a render
 * is synchronous, so the first use recorded since it started is its own.
 */
let contextUse: string | undefined;
const FORBIDDEN_CONTEXT: object = new Proxy(Object.create(null) as object, {
  get: (_target, key) => refuse(`read ${String(key)}`),
  has: (_target, key) => refuse(`checked ${String(key)}`),
  ownKeys: () => refuse('listed its keys'),
  set: (_target, key) => refuse(`wrote ${String(key)}`),
});

function refuse(what: string): never {
  contextUse ??= what;
  throw new Error(`the context is not available to dispatched subscription fields (${what})`);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
