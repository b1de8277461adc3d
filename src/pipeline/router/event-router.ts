import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { EventSource, RawEventInput, RealtimeEvent, UnplacedEvent } from '../events/envelope.ts';
import { newEventId } from '../events/event-id.ts';
import { createKeyedSerial } from '../coordination/keyed-serial.ts';
import type { EventLog } from '../log/event-log.ts';
import { assertName } from '../names.ts';
import { scopeKey } from '../scope.ts';
import { streamOf, type StreamRef } from '../stream.ts';

/** Where every source's events converge (seed 000, "EVENT ROUTER"). */
export interface EventRouter {
  /** Normalizes, appends to the stream's log (which publishes it) and returns the placed event. */
  route(input: RawEventInput, hooks?: RouteHooks): Promise<RealtimeEvent>;
  /**
   * Routes several events, in order, with one log append per stream (a source's batch: a
   * transaction's rows). Per-entity order holds with `route` and earlier batches.
   */
  routeMany(inputs: readonly RawEventInput[]): Promise<RealtimeEvent[]>;
  /**
   * Does what follows placement (`afterPlaced`: the webhook tap) for events already in the log
   * whose routing failed after their append — a keyed publish tried again. Nothing is appended.
   */
  completePlaced(events: readonly RealtimeEvent[]): Promise<void>;
}

export interface RouteHooks {
  /** Awaited once the event is in the log, before what follows placement: a keyed publish remembers its event there. */
  readonly placed?: (event: RealtimeEvent) => Promise<void>;
}

export interface EventRouterOptions {
  readonly log: EventLog;
  readonly logger: Logger;
  /** Counts every routed event by source. @default no metrics */
  readonly metrics?: Pick<Metrics, 'eventsRouted'>;
  /** Counts every routed event per topic and source (the analytics recorder). @default no analytics */
  readonly analytics?: { routed(topicKey: string, source: EventSource): void } | undefined;
  /**
   * Runs on every batch once it is in the log, in each entity's order, before the caller is
   * answered (the webhook tap stores deliveries here); a rejection fails the routing, so the
   * source retries. @default nothing
   */
  readonly afterPlaced?: (events: readonly RealtimeEvent[]) => Promise<void>;
}

export function createEventRouter(options: EventRouterOptions): EventRouter {
  const { log, analytics } = options;
  // Per-entity order: an event waits for the previous event of the same entity to be placed,
  // so concurrent routes for one entity cannot overtake each other on the way to the log.
  const entities = createKeyedSerial();

  const place = async (input: RawEventInput, hooks: RouteHooks | undefined): Promise<RealtimeEvent> => {
    const unplaced = normalize(input);
    const stream = streamOf(input.scope, unplaced.topic);
    const event = await log.append(stream, unplaced);
    if (hooks?.placed) await hooks.placed(event);
    options.metrics?.eventsRouted.inc({ source: event.source });
    analytics?.routed(stream.key, event.source);
    await options.afterPlaced?.([event]);
    return event;
  };

  /** One append per stream, the streams at once; results in input order. */
  const placeMany = async (inputs: readonly RawEventInput[]): Promise<RealtimeEvent[]> => {
    const groups = new Map<string, { stream: StreamRef; events: UnplacedEvent[]; positions: number[] }>();
    inputs.forEach((input, position) => {
      const unplaced = normalize(input);
      const stream = streamOf(input.scope, unplaced.topic);
      let group = groups.get(stream.key);
      if (!group) groups.set(stream.key, (group = { stream, events: [], positions: [] }));
      group.events.push(unplaced);
      group.positions.push(position);
    });
    const placed = new Array<RealtimeEvent>(inputs.length);
    await Promise.all(
      [...groups.values()].map(async (group) => {
        const events = await log.appendMany(group.stream, group.events);
        events.forEach((event, index) => {
          placed[group.positions[index]!] = event;
          options.metrics?.eventsRouted.inc({ source: event.source });
          analytics?.routed(group.stream.key, event.source);
        });
      }),
    );
    await options.afterPlaced?.(placed);
    return placed;
  };

  return {
    routeMany(inputs) {
      const keys = new Set<string>();
      for (const input of inputs) if (input.entity !== undefined) keys.add(`${scopeKey(input.scope)}|${input.entity}`);
      return entities.run([...keys], () => placeMany(inputs));
    },

    route(input, hooks) {
      if (input.entity === undefined) return place(input, hooks);
      return entities.run([`${scopeKey(input.scope)}|${input.entity}`], () => place(input, hooks));
    },

    completePlaced(events) {
      // In each entity's order, as routing them would be.
      const keys = new Set<string>();
      for (const event of events) if (event.metadata.entity !== undefined) keys.add(`${scopeKey(event.metadata.scope)}|${event.metadata.entity}`);
      return entities.run([...keys], async () => {
        await options.afterPlaced?.(events);
      });
    },
  };
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
      ...(input.transaction !== undefined && { transaction: input.transaction }),
    },
  };
}
