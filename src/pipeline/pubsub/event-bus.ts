import type { RealtimeEvent } from '../events/envelope.ts';
import type { StreamRef } from '../stream.ts';

export type EventListener = (event: RealtimeEvent) => void;

/**
 * The live side of streams: delivers each appended event to every process that joined the
 * stream. At-most-once (Redis pub/sub is); the log fills what it misses.
 */
export interface EventBus {
  /**
   * Joins a stream's live channel. Resolves once the subscription is confirmed, so an event
   * appended after it resolves is delivered. Returns the function that leaves.
   */
  join(stream: StreamRef, listener: EventListener): Promise<() => void>;
  /**
   * Reports the bus's link: `lost` as soon as it is cut off (live events may be missed from
   * then on), `recovered` once it receives live events again (all subscriptions confirmed).
   * What was published in between must be read from the log. Returns the function that stops.
   */
  watch(listener: BusLinkListener): () => void;
}

export interface BusLinkListener {
  lost(): void;
  recovered(): void;
}
