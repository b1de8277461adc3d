/**
 * Which endpoints an event goes to, and what they receive. An endpoint selects events by its
 * `events` list — event types and topic patterns (`orders.created`, `orders.*`, `*`) — within its
 * app/env and, when it has one, its tenant only (an endpoint of tenant A never sees tenant B's).
 */
import type { RealtimeEvent } from '../events/envelope.ts';
import { isOwnEventType, isSystemEventType } from '../events/system-topics.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';

export interface SelectingEndpoint {
  readonly id: string;
  readonly app: string;
  readonly env: string;
  readonly tenant: string | null;
  readonly events: readonly string[];
  readonly enabled: boolean;
}

/** `*`, or a name of the characters topics and types may have (`names.ts`), optionally ending in `.*`. */
const ENTRY = /^(\*|[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*(\.\*)?)$/;
const MAX_ENTRIES = 100;

/** Checks an endpoint's `events` list; throws BAD_USER_INPUT naming the wrong entry. */
export function assertEventSelection(events: readonly string[]): void {
  if (events.length === 0 || events.length > MAX_ENTRIES) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `events must list 1–${MAX_ENTRIES} event types or topic patterns (\`orders.*\`, \`*\` for all)`, {
      details: { field: 'events' },
    });
  }
  const wrong = events.find((entry) => entry.length > 200 || !ENTRY.test(entry));
  if (wrong !== undefined) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `events entry "${wrong}" is not an event type or topic pattern (e.g. order.created, orders.*, *)`, {
      details: { field: 'events' },
    });
  }
}

/** `*`, a prefix pattern `a.b.*` (the topic `a.b` and everything below it), or an exact name. */
function matches(entry: string, name: string): boolean {
  if (entry === '*') return true;
  if (entry.endsWith('.*')) {
    const prefix = entry.slice(0, -2);
    return name === prefix || name.startsWith(`${prefix}.`);
  }
  return entry === name;
}

/** Whether `endpoint` receives `event` (enabled or not: a disabled endpoint's deliveries wait for it). */
export function selects(endpoint: SelectingEndpoint, event: Pick<RealtimeEvent, 'topic' | 'type' | 'metadata'>): boolean {
  return selectorOf(event)(endpoint);
}

/**
 * `selects` for one event and many endpoints: what depends on the event alone is worked out once,
 * not per endpoint.
 */
export function selectorOf(event: Pick<RealtimeEvent, 'topic' | 'type' | 'metadata'>): (endpoint: SelectingEndpoint) => boolean {
  const { scope } = event.metadata;
  const { topic, type } = event;
  // One of Tributary's types (`alert.fired`) is matched only on Tributary's own event, not on an
  // application's that took its name.
  const byType = !isSystemEventType(type) || isOwnEventType(event);
  return (endpoint) => {
    if (endpoint.app !== scope.app || endpoint.env !== scope.env) return false;
    if (endpoint.tenant !== null && endpoint.tenant !== scope.tenant) return false;
    return endpoint.events.some((entry) => matches(entry, topic) || (byType && matches(entry, type)));
  };
}

const OWN_LANE = 'event:';

/**
 * The lane of an event: its entity within its tenant (its own id when it has no entity), as
 * `tenant|entity`. The tenant's `\` and `|` are escaped, and a leading `event:` too, so that no two
 * tenant–entity pairs share a lane and no entity's lane is taken for an event's own. Any other
 * tenant's lanes are as they were before the escaping; for a tenant with those characters, its
 * deliveries pending from before it are a lane apart from later ones (not held in order with them).
 */
export function laneOf(event: Pick<RealtimeEvent, 'id' | 'metadata'>): string {
  const { entity, scope } = event.metadata;
  if (entity === undefined) return `${OWN_LANE}${event.id}`;
  const tenant = (scope.tenant ?? '').replace(/[\\|]/g, '\\$&');
  return `${tenant.startsWith(OWN_LANE) ? '\\' : ''}${tenant}|${entity}`;
}

/** A lane of one event (it has no entity): no other event's delivery ever waits on it, nor it on one. */
export function isOwnLane(lane: string): boolean {
  return lane.startsWith(OWN_LANE);
}

/**
 * The body an endpoint receives (JSON, signed byte for byte): the event as subscribers see it,
 * `data` its payload. A body over `maxBytes` goes without its data (`data: null` and
 * `dataOmitted` saying why): the receiver still learns of the event, and reads it from the topic.
 */
export function webhookBody(event: RealtimeEvent, maxBytes = Number.POSITIVE_INFINITY): string {
  const body = fullBody(event);
  if (Buffer.byteLength(body) <= maxBytes) return body;
  return JSON.stringify({ ...(JSON.parse(body) as Record<string, unknown>), data: null, dataOmitted: `the body would exceed ${maxBytes} bytes` });
}

function fullBody(event: RealtimeEvent): string {
  const { metadata } = event;
  return JSON.stringify({
    id: event.id,
    type: event.type,
    topic: event.topic,
    source: event.source,
    timestamp: new Date(metadata.timestamp).toISOString(),
    tenant: metadata.scope.tenant ?? null,
    entity: metadata.entity ?? null,
    data: event.payload,
    ...((metadata.table !== undefined || metadata.operation !== undefined || metadata.revision !== undefined) && {
      metadata: { table: metadata.table, operation: metadata.operation, revision: metadata.revision },
    }),
  });
}
