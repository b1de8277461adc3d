import type { RealtimeEvent } from '../envelope.ts';
import type { Admission } from './dispatcher.ts';
import type { StreamRef } from '../stream.ts';
import type { EventPredicate } from '../filters/event-filter.ts';

/**
 * What a dispatched subscription field returns instead of an async iterator: the stream, filter
 * and resume point, for the transport to hand to the dispatcher with its cohort. It is an
 * AsyncIterable only to satisfy graphql-js's check on subscription fields; iterating it is a
 * programming error (only the WebSocket transport serves subscriptions).
 */
export class DispatchTicket implements AsyncIterable<never> {
  readonly stream: StreamRef;
  readonly filter: EventPredicate | undefined;
  readonly after: string | undefined;
  /**
   * The principal may not read this stream: the subscription stays open and receives nothing,
   * indistinguishable from a quiet stream (no enumeration of what exists).
   */
  readonly denied: boolean;
  /** Delivered first, before anything from the stream (a snapshot). */
  readonly initial: RealtimeEvent | undefined;
  /** Per-subscriber admission of each event (see `DispatchRequest.admit`). */
  readonly admit: Admission | undefined;

  constructor(init: {
    stream: StreamRef;
    filter: EventPredicate | undefined;
    after: string | undefined;
    denied: boolean;
    initial?: RealtimeEvent;
    admit?: Admission;
  }) {
    this.stream = init.stream;
    this.filter = init.filter;
    this.after = init.after;
    this.denied = init.denied;
    this.initial = init.initial;
    this.admit = init.admit;
  }

  [Symbol.asyncIterator](): AsyncIterator<never> {
    throw new Error('A dispatched subscription is served by the dispatcher, not iterated');
  }
}
