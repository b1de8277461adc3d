import { canAccessTopic } from '../auth/permissions.ts';
import type { Principal } from '../auth/principal.ts';
import { ErrorCode, TributaryError } from '../errors.ts';
import { ALERT_TOPIC } from '../pipeline/events/alert-event.ts';
import { ANALYTICS_SYSTEM_TOPIC } from '../pipeline/events/analytics-event.ts';
import { DASHBOARD_TOPIC } from '../pipeline/events/dashboard-event.ts';
import type { RealtimeEvent } from '../pipeline/events/envelope.ts';
import { isJsonObject } from '../pipeline/events/json.ts';
import { publishedMessage } from '../pipeline/events/message.ts';
import { isDocumentTopic, isSystemEventType, isSystemTopic, SYSTEM_TYPE_PREFIXES, WEBHOOK_TEST_TYPE } from '../pipeline/events/system-topics.ts';
import { compileEventWhere, type EventWhere } from '../pipeline/filters/event-filter.ts';
import { dispatchTicket, type DispatchTicket } from '../pipeline/dispatch/subscription-contract.ts';
import { publishOnce } from '../pipeline/idempotency/keyed-publish.ts';
import { isValidKey, keyId, MAX_KEY_LENGTH, requestFingerprint } from '../pipeline/idempotency/publish-keys.ts';
import { encodeCursor, newEpoch } from '../pipeline/log/cursor.ts';
import { assertName, MAX_ENTITY_BYTES } from '../pipeline/names.ts';
import { scopeOf, type Scope } from '../pipeline/scope.ts';
import { streamOf } from '../pipeline/stream.ts';
import type { ResolverContext } from './context.ts';
import { hasControlCharacter, jsonWithin } from './json-input.ts';
import { isEnvironmentAdmin, isOperator } from './require-admin.ts';

export interface PublishInput {
  readonly topic: string;
  readonly type?: string | null;
  readonly payload?: unknown;
  readonly entity?: string | null;
  readonly idempotencyKey?: string | null;
}

/** `publish`: a socket-sourced event, routed into the caller's scope and kept in the log. */
export async function publish(context: ResolverContext, input: PublishInput): Promise<RealtimeEvent> {
  const { principal, services } = context;
  const topic = assertName('topic', input.topic);
  const type = input.type == null ? 'message' : assertName('type', input.type);
  if (isSystemTopic(topic) || isDocumentTopic(topic)) {
    const whose = isSystemTopic(topic) ? "one of Tributary's own topics: its events come from Tributary only" : 'a sync documents topic: its events come from document changes only';
    throw new TributaryError(ErrorCode.FORBIDDEN, `"${topic}" is ${whose}`, { details: { field: 'topic' } });
  }
  if (isSystemEventType(type)) {
    // Webhook endpoints select by type too (`alert.fired`): a published one would be taken for Tributary's.
    throw new TributaryError(ErrorCode.FORBIDDEN, `The type "${type}" is in one of Tributary's own namespaces (${SYSTEM_TYPE_PREFIXES.join(', ')}) or is ${WEBHOOK_TEST_TYPE}: choose another`, {
      details: { field: 'type' },
    });
  }
  if (!canAccessTopic(principal, 'publish', topic)) {
    throw new TributaryError(ErrorCode.FORBIDDEN, `Publishing to "${topic}" needs the permission "<prefix>.publish" for a prefix of the topic`);
  }
  if (!isJsonObject(input.payload)) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'payload must be a JSON object', { details: { field: 'payload' } });
  }
  jsonWithin('payload', input.payload, services.limits.maxEventPayloadBytes);
  const entity = input.entity == null ? undefined : assertEntity(input.entity);
  // Counted once the request is valid, a retry under an idempotency key too (it costs a round trip).
  await services.subjectLimits.admitPublishes(principal);
  const message = publishedMessage({ topic, type, payload: input.payload, scope: scopeOf(principal), entity });
  if (input.idempotencyKey == null) return services.router.route(message);
  if (!isValidKey(input.idempotencyKey)) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `idempotencyKey must be 1–${MAX_KEY_LENGTH} printable ASCII characters without spaces`, {
      details: { field: 'idempotencyKey' },
    });
  }
  return publishOnce(
    { router: services.router, keys: services.publishKeys, logger: services.logger },
    { message, keyId: keyId(message.scope, input.idempotencyKey), fingerprint: requestFingerprint(topic, type, input.payload, entity) },
  );
}

/** A published event's entity: 1–MAX_ENTITY_BYTES bytes of UTF-8 without control characters (it is a webhook lane's key, and reaches log lines). */
function assertEntity(entity: string): string {
  if (entity.length === 0 || Buffer.byteLength(entity) > MAX_ENTITY_BYTES || hasControlCharacter(entity)) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `entity must be 1–${MAX_ENTITY_BYTES} bytes (UTF-8) without control characters`, { details: { field: 'entity' } });
  }
  return entity;
}

export interface EventsInput {
  readonly topic: string;
  readonly where?: EventWhere | null;
  readonly after?: string | null;
}

/**
 * `events`: a ticket for the dispatcher. Inputs are validated here, at subscribe time; a topic
 * the principal may not read yields a denied ticket — no error, nothing delivered — logged and
 * counted. A topic without a history costs the subject one of its new streams (RATE_LIMITED past
 * the budget), asked by the dispatcher only when this instance does not hold the stream yet: its
 * join creates the stream (its head) with or without `after`. A denied ticket joins nothing.
 */
export function subscribeEvents(context: ResolverContext, input: EventsInput): DispatchTicket {
  const { principal, services } = context;
  const topic = assertName('topic', input.topic);
  const filter = compileEventWhere(input.where);
  const denied = !mayRead(context, principal, topic);
  const stream = streamOf(readScopeOf(principal, topic), topic);
  if (denied) {
    services.metrics.subscriptionsDenied.inc({ field: 'events' });
    services.logger.debug({ subject: principal.subject, tenant: principal.tenant, topic }, 'subscription denied silently');
  }
  return dispatchTicket({
    stream,
    filter,
    after: input.after ?? undefined,
    denied,
    readableBy: (next) => mayRead(context, next, topic),
    beforeNewStream: async () => void (await services.subjectLimits.head(principal, stream)),
  });
}

/**
 * `topicCursor`: where a topic stands now. Subscribing with `after` set to it receives every
 * later event, even across a reconnect before the first one arrives. For a topic the principal
 * may not read it returns a well-formed cursor of no stream (the subscription would be silent
 * anyway), so the answer reveals nothing about the topic's activity.
 */
export async function topicCursor(context: ResolverContext, topic: string): Promise<string> {
  const { principal, services } = context;
  const name = assertName('topic', topic);
  if (!mayRead(context, principal, name)) return encodeCursor(newEpoch(), '0');
  return services.subjectLimits.head(principal, streamOf(readScopeOf(principal, name), name));
}

/**
 * Tributary's topics of the whole environment: routed without a tenant, they carry more than any
 * one tenant's share of it (every tenant's alerts and per-topic counts; the dashboard: every
 * application's traffic).
 */
const ENVIRONMENT_TOPICS: ReadonlySet<string> = new Set([DASHBOARD_TOPIC, ALERT_TOPIC, ANALYTICS_SYSTEM_TOPIC]);

/**
 * Whether `principal` may read `topic`'s log: `<prefix>.read` — and, for the environment's own
 * topics, what the field made for them asks of a caller who sees them whole (`dashboardUpdates`:
 * an operator; `alertUpdates`, `statsUpdates`: the environment's admin — a tenant's admin uses
 * those fields, which keep its tenant's share only). Else a token holding `system.read` would
 * read, through `events`, what those fields refuse it.
 */
function mayRead(context: ResolverContext, principal: Principal, topic: string): boolean {
  if (!canAccessTopic(principal, 'read', topic)) return false;
  if (topic === DASHBOARD_TOPIC) return isOperator(principal, context.services.dashboard.operatorScope);
  if (ENVIRONMENT_TOPICS.has(topic)) return isEnvironmentAdmin(principal);
  return true;
}

/**
 * Where `topic` is read for `principal`: its own scope, or the environment's (no tenant) for the
 * environment's own topics — the development principal's tenant `default` would otherwise listen
 * where nothing is ever routed.
 */
function readScopeOf(principal: Principal, topic: string): Scope {
  const scope = scopeOf(principal);
  return ENVIRONMENT_TOPICS.has(topic) ? { ...scope, tenant: undefined } : scope;
}
