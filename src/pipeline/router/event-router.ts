import { randomBytes } from 'node:crypto';
import type { Logger } from '../../logger.ts';
import type { RawEventInput, RealtimeEvent, UnplacedEvent } from '../envelope.ts';
import type { EventLog } from '../log/event-log.ts';
import { assertName } from '../names.ts';
import { scopeKey } from '../scope.ts';
import { streamOf } from '../stream.ts';

/** Where every source's events converge (seed 000, "EVENT ROUTER"). */
export interface EventRouter {
  /** Normalizes, appends to the stream's log (which publishes it) and returns the placed event. */
  route(input: RawEventInput): Promise<RealtimeEvent>;
}

export interface EventRouterOptions {
  readonly log: EventLog;
  readonly logger: Logger;
  /** Called with every routed event (metrics, hot topics). */
  readonly onRouted?: (event: RealtimeEvent) => void;
}

export function createEventRouter(options: EventRouterOptions): EventRouter {
  const { log } = options;
  // Per-entity order: an event waits for the previous event of the same entity to be placed,
  // so concurrent routes for one entity cannot overtake each other on the way to the log.
  const entityTails = new Map<string, Promise<unknown>>();

  const place = async (input: RawEventInput): Promise<RealtimeEvent> => {
    const unplaced = normalize(input);
    const event = await log.append(streamOf(input.scope, unplaced.topic), unplaced);
    options.onRouted?.(event);
    return event;
  };

  return {
    route(input) {
      if (input.entity === undefined) return place(input);
      const key = `${scopeKey(input.scope)}|${input.entity}`;
      const previous = entityTails.get(key) ?? Promise.resolve();
      const placed = previous.then(
        () => place(input),
        () => place(input),
      );
      const tail = placed.catch(() => undefined);
      entityTails.set(key, tail);
      void tail.then(() => {
        if (entityTails.get(key) === tail) entityTails.delete(key);
      });
      return placed;
    },
  };
}

export function newEventId(): string {
  return `evt_${randomBytes(12).toString('base64url')}`;
}

function normalize(input: RawEventInput): UnplacedEvent {
  return {
    id: input.id ?? newEventId(),
    topic: assertName('topic', input.topic),
    source: input.source,
    type: input.type,
    payload: input.payload,
    metadata: {
      timestamp: Date.now(),
      scope: input.scope,
      ...(input.table !== undefined && { table: input.table }),
      ...(input.operation !== undefined && { operation: input.operation }),
      ...(input.revision !== undefined && { revision: input.revision }),
      ...(input.entity !== undefined && { entity: input.entity }),
    },
  };
}
