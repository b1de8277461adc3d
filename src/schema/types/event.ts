import type { EventSource as Source, RealtimeEvent } from '../../pipeline/events/envelope.ts';
import { applyReturnMode } from '../../pipeline/dispatch/return-mode.ts';
import * as resolvers from '../../resolvers/events.ts';
import { builder } from '../builder.ts';
import type { JsonValue } from '../json.ts';

// Event, EventMetadata: delivered by the dispatcher, so their fields follow the rule of
// `pipeline/dispatch/subscription-contract.ts` (enforced there, for every render).

const EventSource = builder.enumType('EventSource', {
  description: 'Where an event came from.',
  values: {
    DATABASE: { value: 'database', description: 'A row change read from the write-ahead log, or the outbox.' },
    SYNC: { value: 'sync', description: 'A sync document mutation.' },
    SOCKET: {
      value: 'socket',
      description:
        'From the clients: an event published with `publish`, or one of the gateway\'s events on what they do (`gateway.connected`, `gateway.disconnected`, `gateway.subscribed`, `gateway.broadcast`), which only Tributary writes.',
    },
    SYSTEM: { value: 'system', description: 'Told by Tributary itself, e.g. a webhook endpoint disabled (`webhooks.endpoints`).' },
  } as const,
});

export const ReturnMode = builder.enumType('ReturnMode', {
  description:
    'How much of a sync event to deliver (`data` and `diff` are left out per subscriber). Events from other sources are delivered whole.',
  values: {
    FULL: { value: 'FULL', description: 'Everything.' },
    DATA: { value: 'DATA', description: 'Without `payload.diff`.' },
    DIFF: {
      value: 'DIFF',
      description:
        "Without `payload.data`, except on the events without a diff — a `document` subscription's SNAPSHOT and every `sync.created` (also a re-creation): the base the next diffs apply to.",
    },
    MINIMAL: {
      value: 'MINIMAL',
      description:
        "Without `payload.data` and `payload.diff`: notify only. SNAPSHOT and CREATED lose their data too (an existing document's then looks like a deleted one's): read the `document` when told.",
    },
  } as const,
});

const topicName = 'A topic: 1–200 letters, digits and _ . : / -, starting with a letter or digit (BAD_USER_INPUT otherwise).';

const EventMetadata = builder.objectRef<RealtimeEvent['metadata']>('EventMetadata').implement({
  description: "Where and when an event was made; a field that does not apply to the event's source is null.",
  fields: (t) => ({
    timestamp: t.field({
      type: 'DateTime',
      description: 'When Tributary accepted the event. `where` filters on it in milliseconds since the epoch or as a DateTime.',
      resolve: (metadata) => new Date(metadata.timestamp),
    }),
    table: t.exposeString('table', { nullable: true, description: 'Database events: the table.' }),
    operation: t.exposeString('operation', { nullable: true, description: 'Database events: insert, update or delete.' }),
    revision: t.exposeInt('revision', { nullable: true, description: 'Sync events: the document revision after the change.' }),
    entity: t.exposeString('entity', {
      nullable: true,
      description: "What the event is about: a row's key (database events), a document's id (sync), what `publish` named; webhooks keep one entity's events in order.",
    }),
  }),
});

export const Event = builder.objectRef<RealtimeEvent>('Event').implement({
  description: 'One event of a topic, in the normalized envelope every source produces.',
  fields: (t) => ({
    id: t.exposeID('id', { description: '`evt_…`; stable across redeliveries: use it to de-duplicate.' }),
    topic: t.exposeString('topic', { description: "The topic it was published on, in the caller's scope." }),
    source: t.field({ type: EventSource, description: 'Where it came from.', resolve: (event): Source => event.source }),
    type: t.exposeString('type', {
      description:
        "What happened (`order.created`, `sync.updated`, …): the type `publish`, an outbox row or a CDC mapping gave it, or one of Tributary's own (`alert.*`, `endpoint.*`, `gateway.*`, `sync.*`, …).",
    }),
    payload: t.field({
      type: 'JSON',
      description:
        "The event's data, a JSON object: what was published, an outbox row's payload, a CDC mapping's payload, or a document change (`{ service, documentId, revision, data, diff }`, trimmed by `returnMode`).",
      resolve: (event) => event.payload,
    }),
    metadata: t.field({ type: EventMetadata, description: 'Where and when it was made.', resolve: (event) => event.metadata }),
    cursor: t.exposeString('cursor', { description: 'Pass as `after` to resume right after this event.' }),
  }),
});

/** EventWhere as Pothos types it; structurally the pipeline's `EventWhere`. */
interface EventWhereInput {
  field?: string | null;
  eq?: JsonValue;
  ne?: JsonValue;
  in?: JsonValue[] | null;
  nin?: JsonValue[] | null;
  gt?: JsonValue;
  gte?: JsonValue;
  lt?: JsonValue;
  lte?: JsonValue;
  exists?: boolean | null;
  and?: EventWhereInput[] | null;
  or?: EventWhereInput[] | null;
  not?: EventWhereInput | null;
}

const EventWhere = builder.inputRef<EventWhereInput>('EventWhere').implement({
  description:
    'A server-side filter. `field` is a dot path into the event (`type`, `source`, `payload.status`, `metadata.operation`, …) compared with one or more operators; `and`, `or` and `not` combine filters. Everything in one filter must hold. On `metadata.timestamp`, operands are milliseconds since the epoch or a DateTime. Bounded: at most 8 levels, 64 conditions (each `and`, `or` and `not` counting as one too), each value (an operand, or one `in` item) at most 4 KiB as JSON and all of a filter\'s values 16 KiB (BAD_USER_INPUT past them).',
  fields: (t) => ({
    field: t.string({
      description:
        'The dot path compared: `id`, `topic`, `source`, `type`, `payload` and up to 10 keys or array indexes below it (`payload.items.0.sku`), or `metadata.timestamp`, `.table`, `.operation`, `.revision`, `.entity`. Needs at least one operator.',
    }),
    eq: t.field({ type: 'JSON', description: 'Equal, as JSON (`5` is not `"5"`; key order ignored). `eq: null` matches a null value, not a missing one.' }),
    ne: t.field({ type: 'JSON', description: 'Not `eq`: true for a missing field too.' }),
    in: t.field({ type: ['JSON'], description: 'Equal to one of these (at most 100), each compared as `eq` does.' }),
    nin: t.field({ type: ['JSON'], description: 'Not `in`: true for a missing field too.' }),
    gt: t.field({ type: 'JSON', description: 'Greater than: a number against a number, a string against a string (code-unit order); anything else does not match.' }),
    gte: t.field({ type: 'JSON', description: 'Greater than or equal, as `gt` compares.' }),
    lt: t.field({ type: 'JSON', description: 'Less than, as `gt` compares.' }),
    lte: t.field({ type: 'JSON', description: 'Less than or equal, as `gt` compares.' }),
    exists: t.boolean({ description: 'true: the path holds a value, null included; false: it is missing.' }),
    and: t.field({ type: [EventWhere], description: 'Every one of these holds (an empty list holds).' }),
    or: t.field({ type: [EventWhere], description: 'At least one of these holds (an empty list never does).' }),
    not: t.field({ type: EventWhere, description: 'This does not hold.' }),
  }),
});

builder.queryField('topicCursor', (t) =>
  t.string({
    description:
      "Where a topic stands now, as a cursor. Subscribe to `events` with `after` set to it to receive every later event — across reconnects too, even before the first event arrives. The pattern for a snapshot without a race: read `topicCursor`, read your state, subscribe with `after`.",
    args: { topic: t.arg.string({ required: true, description: topicName }) },
    resolve: (_root, args, context) => resolvers.topicCursor(context, args.topic),
  }),
);

builder.mutationField('publish', (t) =>
  t.field({
    type: Event,
    nullable: true,
    description:
      "Publishes an event on a topic in the caller's scope: kept in the topic's log (resumable) and delivered to its subscribers. Needs `<prefix>.publish` for a prefix of the topic, or role admin.",
    args: {
      topic: t.arg.string({
        required: true,
        description: `${topicName} Not one of Tributary's own topics (\`system.*\`, \`gateway.*\`, \`webhooks.endpoints\`, \`webhooks.test\`, \`analytics.minutes\`) nor a sync documents topic (\`sync.*\`): FORBIDDEN.`,
      }),
      type: t.arg.string({ defaultValue: 'message', description: 'The event type (`order.created`, say): subscribers filter on it and webhook endpoints select by it.' }),
      payload: t.arg({
        type: 'JSON',
        required: true,
        description: "The event's data: a JSON object of at most EVENT_MAX_PAYLOAD_BYTES (64 KiB by default) as JSON; BAD_USER_INPUT otherwise.",
      }),
      entity: t.arg.string({
        description:
          "What the event is about (an order's id, say): webhook endpoints receive one entity's events in the order they were published — each once the one before it was delivered or dead-lettered — where events without one go out side by side. Publish an entity's next event once the last one answered: two sent at the same instant (to two instances, say) have no order. Scoped to the caller's tenant. 1–1,024 bytes (UTF-8), no control characters.",
      }),
      idempotencyKey: t.arg.string({
        description:
          "Makes a retry safe: a publish with a key used before in the caller's scope (within EVENT_PUBLISH_KEY_TTL_SECONDS, 24 h by default) places nothing and answers the first one's event — finishing its webhook deliveries when the first try failed there. The same key with another topic, type, entity or payload is CONFLICT; so is a retry before the first try has placed its event (`extensions.inFlight: true`: retry shortly). 1–255 printable ASCII characters without spaces (a UUID, say). Kept in Redis when there is one, otherwise in this process's memory (bounded; a restart forgets it); a retry under a key forgotten places the event again, with the same id.",
      }),
    },
    resolve: (_root, args, context) => resolvers.publish(context, args),
  }),
);

builder.subscriptionField('events', (t) =>
  t.field({
    type: Event,
    description:
      "The events of a topic in the caller's scope. Needs `<prefix>.read` for a prefix of the topic (or role admin); without it the subscription stays silent. With `after`, first replays what followed that cursor, then continues live, with no gap and no duplicate; a cursor that cannot be resumed (expired, unknown, another history) ends the subscription with RESYNC_REQUIRED.",
    args: {
      topic: t.arg.string({ required: true, description: topicName }),
      where: t.arg({ type: EventWhere, description: 'Deliver only the events that match it (evaluated on the server).' }),
      returnMode: t.arg({ type: ReturnMode, defaultValue: 'FULL', description: 'How much of each sync event to deliver.' }),
      after: t.arg.string({
        description: "A cursor of this topic (an event's `cursor`, or `topicCursor`): replay what followed it, then go on live. Absent: live events from now on.",
      }),
    },
    subscribe: (_root, args, context) => resolvers.subscribeEvents(context, args),
    resolve: (event, args) => applyReturnMode(event, args.returnMode ?? 'FULL'),
  }),
);
