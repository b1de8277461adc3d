import type { RealtimeEvent, UnplacedEvent } from '../events/envelope.ts';
import type { Scope } from '../scope.ts';
import type { StreamRef } from '../stream.ts';

/**
 * Per-stream history with bounded retention and an epoch: what makes delivery resumable.
 *
 * `append` places an event and publishes it to the stream's live channel as one step, so every
 * process sees a stream's live events in log order.
 */
export interface EventLog {
  append(stream: StreamRef, event: UnplacedEvent): Promise<RealtimeEvent>;
  /** Appends several events to one stream in one step, in order (as `append` each, one round trip). */
  appendMany(stream: StreamRef, events: readonly UnplacedEvent[]): Promise<RealtimeEvent[]>;
  /**
   * Events after `cursor`, oldest first, at most `limit`.
   * @throws TributaryError RESYNC_REQUIRED when the cursor is unknown, from another epoch, or
   *   older than the retained history (events after it are gone).
   */
  readAfter(stream: StreamRef, cursor: string, limit: number): Promise<readonly RealtimeEvent[]>;
  /**
   * The cursor of the stream's newest event (of an empty stream: its start), creating the
   * stream's epoch if it has none. Reading after it returns only later events.
   */
  head(stream: StreamRef): Promise<string>;
  /**
   * Forgets the history of every stream `match` selects and gives it a new epoch, so every cursor
   * into it gets RESYNC_REQUIRED and live subscribers resync at its next event. For a source
   * that lost events before they reached the log (a replication slot recreated). Returns how many
   * streams were renewed.
   */
  renewEpochs(match: (scope: Scope, topic: string) => boolean): Promise<number>;
  /**
   * Events still retained in the streams `match` selects whose time is in `[since, until)` (ms),
   * stream after stream, each stream's in its order, at most `limit` in all. For replays (webhooks).
   */
  eventsBetween(match: (scope: Scope, topic: string) => boolean, since: number, until: number, limit: number): Promise<RealtimeEvent[]>;
  close(): Promise<void>;
}

export interface LogRetention {
  /** Events kept per stream, at least. @default 10000 */
  readonly maxEvents: number;
  /** How long events are kept, in ms; a stream idle that long is forgotten with its epoch. @default 1 hour */
  readonly maxAgeMs: number;
}
