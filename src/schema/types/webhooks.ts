import type { AttemptRecord } from '../../pipeline/webhooks/delivery-log.ts';
import type { Delivery } from '../../pipeline/webhooks/delivery-store.ts';
import type { EndpointWithSecret } from '../../pipeline/webhooks/webhook-admin.ts';
import type { WebhookEndpoint as Endpoint } from '../../pipeline/webhooks/endpoint-store.ts';
import * as resolvers from '../../resolvers/webhooks.ts';
import type { LogPage } from '../../resolvers/webhooks.ts';
import { builder } from '../builder.ts';

const endpointIdArg = "The endpoint's id (`ep_…`); NOT_FOUND for one not in the caller's scope.";
const endpointUrl = 'http(s), up to 2,048 characters, without credentials; loopback, private and link-local targets are refused unless WEBHOOK_ALLOW_PRIVATE_TARGETS=true.';
const endpointDescription = 'A note for people: at most 1,000 characters, without control characters.';
const endpointEvents = 'Event types and topic patterns: `order.created`, `orders.*`, `*` for all (1–100 entries of up to 200 characters).';
const logAfter = "The previous page's `endCursor`, for the (older) page after it; absent: the first page.";

const WebhookEndpoint = builder.objectRef<Endpoint>('WebhookEndpoint').implement({
  description: 'Where events are POSTed, signed (Standard Webhooks headers and X-Tributary-Signature). Its secret is shown once, by create and rotate.',
  fields: (t) => ({
    id: t.exposeID('id', { description: '`ep_…`.' }),
    url: t.exposeString('url', { description: 'Where the events are POSTed.' }),
    description: t.exposeString('description', { description: "The admin's note about it; empty when none was given." }),
    events: t.exposeStringList('events', { description: 'Event types and topic patterns it receives (`orders.*`, `*`).' }),
    tenant: t.exposeString('tenant', { nullable: true, description: 'Null: every tenant of the environment.' }),
    enabled: t.exposeBoolean('enabled', {
      description:
        'false once disabled — by an admin, for a 410 Gone, or after WEBHOOK_DISABLE_AFTER_SECONDS (5 days) without a success: its deliveries then wait for `setWebhookEndpointEnabled`.',
    }),
    disabledReason: t.exposeString('disabledReason', {
      nullable: true,
      description: 'Why it was disabled (`disabled by an admin`, `the endpoint answered 410 Gone`, `no successful delivery for … s`); null while enabled.',
    }),
    rateLimitPerSecond: t.exposeInt('rateLimitPerSecond', { nullable: true, description: 'Attempts started per second at most; null: no limit.' }),
    maxConcurrency: t.exposeInt('maxConcurrency', { description: 'Attempts in flight at once at most.' }),
    failingSince: t.expose('failingSince', { type: 'DateTime', nullable: true, description: 'Since when every attempt failed; null after a success.' }),
    lastSuccessAt: t.expose('lastSuccessAt', { type: 'DateTime', nullable: true, description: 'When an attempt last delivered; null before the first.' }),
    backlogFullSince: t.expose('backlogFullSince', {
      type: 'DateTime',
      nullable: true,
      description:
        'Since when its backlog has been full — more than WEBHOOK_MAX_PENDING deliveries pending — so that no deliveries are stored for it (an `endpoint.backlog_full` event told it); null once it is worked off below nine tenths of that. Replay from then to catch up.',
    }),
    previousSecretExpiresAt: t.expose('previousSecretExpiresAt', { type: 'DateTime', nullable: true, description: 'Until then the secret replaced by the last rotation signs too.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was created.' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When it was last changed.' }),
  }),
});

const WebhookEndpointWithSecret = builder.objectRef<EndpointWithSecret>('WebhookEndpointWithSecret').implement({
  description: 'An endpoint and its signing secret, which only `createWebhookEndpoint` and `rotateWebhookSecret` return.',
  fields: (t) => ({
    endpoint: t.field({ type: WebhookEndpoint, description: 'The endpoint.', resolve: (answer) => answer.endpoint }),
    secret: t.exposeString('secret', { description: '`whsec_…`: shown this once. Receivers verify signatures with it.' }),
  }),
});

const WebhookDeliveryState = builder.enumType('WebhookDeliveryState', {
  description: 'Where a delivery stands.',
  values: {
    PENDING: { value: 'pending', description: 'Not delivered yet: waiting for its turn in its entity lane, or for a retry.' },
    DELIVERED: { value: 'delivered', description: 'The endpoint answered 2xx.' },
    DEAD: { value: 'dead', description: 'Dead-lettered: the retry window ended (a `webhook.test` answered 410 Gone too). Replayable.' },
  } as const,
});

const WebhookTrigger = builder.enumType('WebhookTrigger', {
  description: 'What made a delivery, or an attempt.',
  values: {
    INITIAL: { value: 'initial', description: 'The event was routed.' },
    REPLAY: { value: 'replay', description: '`replayWebhooks`.' },
    MANUAL: { value: 'manual', description: '`redeliverWebhook`.' },
    TEST: { value: 'test', description: '`sendTestWebhook`.' },
    RETRY: { value: 'retry', description: 'An attempt after the first of its delivery (attempts only: the delivery keeps the trigger that started it).' },
  } as const,
});

const WebhookDelivery = builder.objectRef<Delivery>('WebhookDelivery').implement({
  description: "One event for one endpoint. Every attempt of it carries the event's id as `webhook-id`.",
  fields: (t) => ({
    id: t.exposeID('id', { description: "The delivery's id, for `redeliverWebhook` and `webhookAttempts(deliveryId:)`." }),
    endpointId: t.exposeID('endpointId', { description: 'The endpoint it is for.' }),
    eventId: t.exposeString('eventId', { description: 'The event it delivers: its `webhook-id`.' }),
    eventType: t.exposeString('eventType', { description: "The event's type." }),
    topic: t.exposeString('topic', { description: "The event's topic." }),
    body: t.exposeString('body', {
      description:
        'The exact JSON body signed and sent to the receiver (UTF-8), the same on every attempt: at most WEBHOOK_MAX_BODY_BYTES; an event whose body would be larger is sent without its data (`data: null`, `dataOmitted` saying why).',
    }),
    trigger: t.field({ type: WebhookTrigger, description: 'What made it (never RETRY).', resolve: (delivery) => delivery.trigger }),
    state: t.field({ type: WebhookDeliveryState, description: 'Where it stands.', resolve: (delivery) => delivery.state }),
    attempts: t.exposeInt('attempts', {
      description: "Attempts made so far; one cut by Tributary's own shutdown (outcome `cut` in the attempt log) is not counted, nor does it move the delivery along its retries.",
    }),
    firstAttemptAt: t.expose('firstAttemptAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the first counted attempt was made (a cut one is not): the retry window runs from it.',
    }),
    nextAttemptAt: t.field({
      type: 'DateTime',
      nullable: true,
      description:
        'When the delivery is attempted next; null once it is finished, or while it waits for an earlier delivery of its entity to this endpoint (it is due as soon as that one is delivered or dead-lettered).',
      resolve: (delivery) => (delivery.state === 'pending' ? delivery.nextAttemptAt : null),
    }),
    lastStatus: t.exposeInt('lastStatus', { nullable: true, description: "The last counted attempt's HTTP status (a cut one leaves it as it was); null when it had no answer." }),
    lastError: t.exposeString('lastError', { nullable: true, description: "The last counted attempt's error (a cut one leaves it as it was)." }),
    eventTime: t.expose('eventTime', { type: 'DateTime', description: "When its event was routed (the event's `metadata.timestamp`)." }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the delivery was stored.' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true, description: 'When it was delivered or dead-lettered; null while pending.' }),
  }),
});

const WebhookAttempt = builder.objectRef<AttemptRecord>('WebhookAttempt').implement({
  description: 'One attempt of a delivery, as the attempt log keeps it (WEBHOOK_LOG_RETENTION_SECONDS, 30 days by default).',
  fields: (t) => ({
    id: t.exposeID('id', { description: "The attempt's id." }),
    deliveryId: t.exposeID('deliveryId', { description: 'The delivery it was an attempt of.' }),
    endpointId: t.exposeID('endpointId', { description: 'The endpoint it was sent to.' }),
    eventId: t.exposeString('eventId', { description: 'The event it delivered: its `webhook-id`.' }),
    eventType: t.exposeString('eventType', { description: "The event's type." }),
    attempt: t.exposeInt('attempt', {
      description: 'Which attempt of its delivery this was, from 1. A `cut` one is not counted: it carries the number of the attempt it would have been, and the next attempt carries the same number again.',
    }),
    trigger: t.field({ type: WebhookTrigger, description: "Its delivery's trigger for a first attempt, RETRY for the ones after.", resolve: (attempt) => attempt.trigger }),
    outcome: t.exposeString('outcome', {
      description:
        "delivered, failed, gone (410: the endpoint is disabled and the delivery waits, first in its lane, for the enable), throttled, refused, dead (the last attempt of a delivery dead-lettered after its retries), or cut (still waiting for the receiver when Tributary's process shut down: no failure of the receiver's, not counted in the delivery's attempts, and due again at once; its error says `cut by shutdown`).",
    }),
    status: t.exposeInt('status', { nullable: true, description: "The receiver's HTTP status; null when it did not answer." }),
    durationMs: t.exposeInt('durationMs', { description: 'How long it took, in ms.' }),
    error: t.exposeString('error', {
      nullable: true,
      description: 'What went wrong besides the status: no answer (a timeout, a connection error), a refused target, a redirect (not followed), or `cut by shutdown`; null otherwise.',
    }),
    responseExcerpt: t.exposeString('responseExcerpt', { nullable: true, description: "The start of the receiver's answer (1 KiB at most)." }),
    nextAttemptAt: t.expose('nextAttemptAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When its delivery was to be attempted next after it; null when it finished the delivery (delivered or dead-lettered).',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was logged.' }),
  }),
});

const WebhookDeliveryPage = builder.objectRef<LogPage<Delivery>>('WebhookDeliveryPage').implement({
  description: 'A page of deliveries, newest first.',
  fields: (t) => ({
    nodes: t.field({ type: [WebhookDelivery], description: 'The deliveries of the page.', resolve: (page) => page.nodes }),
    endCursor: t.exposeString('endCursor', { nullable: true, description: 'Pass as `after` for the next (older) page.' }),
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More (older) deliveries follow: pass `endCursor` as `after` for them.' }),
  }),
});

const WebhookAttemptPage = builder.objectRef<LogPage<AttemptRecord>>('WebhookAttemptPage').implement({
  description: 'A page of attempts, newest first.',
  fields: (t) => ({
    nodes: t.field({ type: [WebhookAttempt], description: 'The attempts of the page.', resolve: (page) => page.nodes }),
    endCursor: t.exposeString('endCursor', { nullable: true, description: 'Pass as `after` for the next (older) page.' }),
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More (older) attempts follow: pass `endCursor` as `after` for them.' }),
  }),
});

const WebhookEndpointInput = builder.inputType('WebhookEndpointInput', {
  description: "A new endpoint's settings.",
  fields: (t) => ({
    url: t.string({ required: true, description: endpointUrl }),
    description: t.string({ description: `${endpointDescription} Default: empty.` }),
    events: t.stringList({ required: true, description: endpointEvents }),
    tenant: t.string({ description: "Only this tenant's events (a caller with a tenant gets its own)." }),
    rateLimitPerSecond: t.int({ description: 'Attempts started per second at most: 1–10,000 (default: no limit).' }),
    maxConcurrency: t.int({ description: 'Attempts in flight at once at most: 1–100 (default 10).' }),
  }),
});

const WebhookEndpointUpdate = builder.inputType('WebhookEndpointUpdate', {
  description: 'What to change in an endpoint: a field left out stays as it is.',
  fields: (t) => ({
    url: t.string({ description: endpointUrl }),
    description: t.string({ description: endpointDescription }),
    events: t.stringList({ description: endpointEvents }),
    rateLimitPerSecond: t.int({ description: 'Attempts started per second at most: 1–10,000; null removes the limit.' }),
    maxConcurrency: t.int({ description: 'Attempts in flight at once at most: 1–100.' }),
  }),
});

builder.queryFields((t) => ({
  webhookEndpoints: t.field({
    type: [WebhookEndpoint],
    description: "Admin: the environment's webhook endpoints (a caller with a tenant: its tenant's).",
    resolve: (_root, _args, context) => resolvers.webhookEndpoints(context),
  }),
  webhookEndpoint: t.field({
    type: WebhookEndpoint,
    nullable: true,
    description: "Admin: one endpoint of the caller's environment (a caller with a tenant: its tenant's); null when there is none with that id there.",
    args: { id: t.arg.id({ required: true, description: "The endpoint's id (`ep_…`)." }) },
    resolve: (_root, { id }, context) => resolvers.webhookEndpoint(context, id.toString()),
  }),
  webhookDeliveries: t.field({
    type: WebhookDeliveryPage,
    description: 'Admin: deliveries, newest first, filtered (`state: DEAD` lists the dead letters).',
    args: {
      endpointId: t.arg.id({ description: "Deliveries to this endpoint only (`ep_…`); NOT_FOUND for one not in the caller's scope." }),
      state: t.arg({ type: WebhookDeliveryState, description: 'Deliveries in this state only.' }),
      eventType: t.arg.string({ description: 'Deliveries of events of this type only.' }),
      eventId: t.arg.string({ description: "Deliveries of this event only (its `webhook-id`): whether and how it reached the endpoints." }),
      since: t.arg({ type: 'DateTime', description: 'Events at or after this time.' }),
      until: t.arg({ type: 'DateTime', description: 'Events before this time.' }),
      first: t.arg.int({ description: 'At most this many deliveries: 1–200, default 50.' }),
      after: t.arg.string({ description: logAfter }),
    },
    resolve: (_root, args, context) => resolvers.webhookDeliveries(context, { ...args, endpointId: args.endpointId?.toString() ?? null }),
  }),
  webhookAttempts: t.field({
    type: WebhookAttemptPage,
    description: 'Admin: every attempt, newest first, filtered.',
    args: {
      endpointId: t.arg.id({ description: "Attempts to this endpoint only (`ep_…`); NOT_FOUND for one not in the caller's scope." }),
      deliveryId: t.arg.id({ description: 'Attempts of this delivery only.' }),
      outcome: t.arg.string({ description: 'Attempts with exactly this outcome (see `WebhookAttempt.outcome`): `failed` leaves out `dead` and `cut`.' }),
      eventType: t.arg.string({ description: 'Attempts of events of this type only.' }),
      eventId: t.arg.string({ description: "Attempts of this event's deliveries only (its `webhook-id`)." }),
      since: t.arg({ type: 'DateTime', description: 'Attempts at or after this time.' }),
      until: t.arg({ type: 'DateTime', description: 'Attempts before this time.' }),
      first: t.arg.int({ description: 'At most this many attempts: 1–200, default 50.' }),
      after: t.arg.string({ description: logAfter }),
    },
    resolve: (_root, args, context) =>
      resolvers.webhookAttempts(context, { ...args, endpointId: args.endpointId?.toString() ?? null, deliveryId: args.deliveryId?.toString() ?? null }),
  }),
}));

builder.mutationFields((t) => ({
  createWebhookEndpoint: t.field({
    type: WebhookEndpointWithSecret,
    nullable: true,
    description: "Admin: a new endpoint of the caller's environment; the answer carries its secret, shown this once.",
    args: { input: t.arg({ type: WebhookEndpointInput, required: true, description: "The endpoint's settings." }) },
    resolve: (_root, { input }, context) =>
      resolvers.createWebhookEndpoint(context, {
        url: input.url,
        description: input.description ?? undefined,
        events: input.events,
        tenant: input.tenant ?? undefined,
        rateLimitPerSecond: input.rateLimitPerSecond ?? null,
        maxConcurrency: input.maxConcurrency ?? undefined,
      }),
  }),
  updateWebhookEndpoint: t.field({
    type: WebhookEndpoint,
    nullable: true,
    description:
      "Admin: changes what `input` gives (the rest stays; the tenant never changes), checked as at creation (BAD_USER_INPUT naming the field; a URL that resolves to a private address is refused unless WEBHOOK_ALLOW_PRIVATE_TARGETS). Deliveries already stored keep their body; the new URL and limits apply from the next attempt. NOT_FOUND for an endpoint not in the caller's scope.",
    args: {
      id: t.arg.id({ required: true, description: endpointIdArg }),
      input: t.arg({ type: WebhookEndpointUpdate, required: true, description: 'What to change.' }),
    },
    resolve: (_root, { id, input }, context) =>
      resolvers.updateWebhookEndpoint(context, id.toString(), {
        url: input.url ?? undefined,
        description: input.description ?? undefined,
        events: input.events ?? undefined,
        // Given as null: no limit; absent: unchanged.
        ...('rateLimitPerSecond' in input && { rateLimitPerSecond: input.rateLimitPerSecond ?? null }),
        maxConcurrency: input.maxConcurrency ?? undefined,
      }),
  }),
  deleteWebhookEndpoint: t.field({
    type: 'Boolean',
    nullable: true,
    description: 'Admin: deletes the endpoint and its pending deliveries.',
    args: { id: t.arg.id({ required: true, description: endpointIdArg }) },
    resolve: (_root, { id }, context) => resolvers.deleteWebhookEndpoint(context, id.toString()),
  }),
  setWebhookEndpointEnabled: t.field({
    type: WebhookEndpoint,
    nullable: true,
    description:
      'Admin: disables (its deliveries wait) or enables an endpoint (clearing its failure streak; what waited for it goes at once, a large backlog drained in the background). An endpoint already so is left as it is.',
    args: {
      id: t.arg.id({ required: true, description: endpointIdArg }),
      enabled: t.arg.boolean({ required: true, description: 'true enables the endpoint, false disables it.' }),
    },
    resolve: (_root, { id, enabled }, context) => resolvers.setWebhookEndpointEnabled(context, id.toString(), enabled),
  }),
  retryPendingWebhooks: t.field({
    type: 'Int',
    nullable: true,
    description:
      "Admin: the endpoint's deliveries waiting out a retry's backoff or a receiver's Retry-After go now — after a receiver's outage, say, instead of at each one's next attempt (up to an hour apart in the retry tail). Each entity's deliveries still go in order; their attempt counts and retry window go on. Returns how many were made due at once (of the endpoint's first 1,000 entities with pending deliveries; more are gone through in the background). A disabled endpoint is refused (BAD_USER_INPUT): enabling it sends what waits at once.",
    args: { endpointId: t.arg.id({ required: true, description: endpointIdArg }) },
    resolve: (_root, { endpointId }, context) => resolvers.retryPendingWebhooks(context, endpointId.toString()),
  }),
  rotateWebhookSecret: t.field({
    type: WebhookEndpointWithSecret,
    nullable: true,
    description: 'Admin: a new secret, shown this once; the old one keeps signing (a second signature) for `overlapSeconds` (default 1 day).',
    args: {
      id: t.arg.id({ required: true, description: endpointIdArg }),
      overlapSeconds: t.arg.int({ description: 'How long the old secret keeps signing, in seconds: 0–604,800 (7 days), default 86,400 (1 day).' }),
    },
    resolve: (_root, { id, overlapSeconds }, context) => resolvers.rotateWebhookSecret(context, id.toString(), overlapSeconds ?? 86_400),
  }),
  redeliverWebhook: t.field({
    type: WebhookDelivery,
    nullable: true,
    description: "Admin: the delivery's event again, with the same `webhook-id` (the event id: receivers de-duplicate it like a retry).",
    args: { deliveryId: t.arg.id({ required: true, description: "The delivery's id (`WebhookDelivery.id`); NOT_FOUND for one not in the caller's scope." }) },
    resolve: (_root, { deliveryId }, context) => resolvers.redeliverWebhook(context, deliveryId.toString()),
  }),
  replayWebhooks: t.field({
    type: 'Int',
    nullable: true,
    description: "Admin: delivers again the endpoint's events of a time range (only the dead-lettered ones with `onlyFailed`), oldest first, each with its event's `webhook-id` (the same as before: receivers de-duplicate it like a retry); returns how many. Events are taken from the event log within its retention (EVENT_LOG_MAX_EVENTS per topic, EVENT_LOG_MAX_AGE_SECONDS: an hour by default; without Redis the log is in memory and a restart empties it), older ones from the endpoint's own deliveries, which exist only for events it was sent. At most 10,000: a range with more is refused (BAD_USER_INPUT, `field: until`) and nothing is sent; replay it in parts. An endpoint holds at most 20,000 pending deliveries from replays, redeliveries and tests: a replay (or redelivery, or test) that would pass that is refused (RATE_LIMITED) until they have gone out.",
    args: {
      endpointId: t.arg.id({ required: true, description: endpointIdArg }),
      since: t.arg({ type: 'DateTime', required: true, description: 'Events at or after this time (from 1970 to now).' }),
      until: t.arg({ type: 'DateTime', description: 'Events before this time, which must be after `since` (default: now).' }),
      onlyFailed: t.arg.boolean({ description: 'Only the dead letters, of events whose latest delivery is dead: an event delivered, or pending again, since its latest dead letter is skipped.' }),
    },
    resolve: (_root, args, context) => resolvers.replayWebhooks(context, { ...args, endpointId: args.endpointId.toString() }),
  }),
  sendTestWebhook: t.field({
    type: WebhookDelivery,
    nullable: true,
    description: 'Admin: a `webhook.test` event to the endpoint, even when it is disabled.',
    args: { endpointId: t.arg.id({ required: true, description: endpointIdArg }) },
    resolve: (_root, { endpointId }, context) => resolvers.sendTestWebhook(context, endpointId.toString()),
  }),
}));
