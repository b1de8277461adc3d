import type { RealtimeEvent } from '../envelope.ts';
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
   * Called after the bus was cut off and came back: events published meanwhile were missed and
   * must be read from the log. Returns the function that stops listening.
   */
  onRecovered(listener: () => void): () => void;
}
