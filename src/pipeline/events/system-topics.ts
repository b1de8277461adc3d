/**
 * The topics Tributary routes its own events on — alerts, the dashboard, webhook endpoint notices,
 * flushed analytics minutes, the gateway's socket lifecycle — and the types those events carry.
 * Nobody may publish there: subscribers and webhook endpoints trust what arrives on them (an alert
 * about an endpoint is kept from that endpoint, a dashboard is shown to operators, an endpoint may
 * select `alert.fired` by type), so a client must not be able to forge one. Sync documents' topics
 * and types (`sync.…`) are the documents' own in the same way.
 */
import { ANALYTICS_SYSTEM_TOPIC } from './analytics-event.ts';
import { WEBHOOK_SYSTEM_TOPIC } from './webhook-event.ts';

/** Every topic under these prefixes is Tributary's: `system.alerts`, `system.dashboard`, …; the gateway's `gateway.*`. */
const SYSTEM_PREFIXES: readonly string[] = ['system.', 'gateway.'];

/** What `sendTestWebhook` sends: type `webhook.test` on topic `webhooks.test`. */
export const WEBHOOK_TEST_TOPIC = 'webhooks.test';
export const WEBHOOK_TEST_TYPE = 'webhook.test';

/**
 * Tributary's topics outside them, by name (named before the prefixes existed): endpoint notices
 * (`webhooks.endpoints`), test webhooks, flushed analytics minutes. Only these: a whole
 * `webhooks.*` namespace would refuse the CDC mappings and outbox rows applications already route
 * there (a model `webhooks.contacts`).
 */
const SYSTEM_TOPICS: ReadonlySet<string> = new Set([WEBHOOK_SYSTEM_TOPIC, WEBHOOK_TEST_TOPIC, ANALYTICS_SYSTEM_TOPIC]);

export function isSystemTopic(topic: string): boolean {
  return SYSTEM_PREFIXES.some((prefix) => topic.startsWith(prefix)) || SYSTEM_TOPICS.has(topic);
}

/** Sync documents' change events go to `sync.{service}.…` (`document-change.ts`): written by `mergeDocument` and its kin only. */
const DOCUMENT_PREFIX = 'sync.';

export function isDocumentTopic(topic: string): boolean {
  return topic.startsWith(DOCUMENT_PREFIX);
}

/**
 * The namespaces of the types Tributary's own events carry: `alert.fired`, `endpoint.disabled`,
 * `gateway.connected`, `dashboard.updated`, `analytics.minute`, `sync.updated`, …; and, by name,
 * `webhook.test` (not a `webhook.` namespace: a CDC model `webhook` has types `webhook.created`…).
 */
export const SYSTEM_TYPE_PREFIXES: readonly string[] = ['alert.', 'endpoint.', 'gateway.', 'dashboard.', 'analytics.', DOCUMENT_PREFIX];

export function isSystemEventType(type: string): boolean {
  return type === WEBHOOK_TEST_TYPE || SYSTEM_TYPE_PREFIXES.some((prefix) => type.startsWith(prefix));
}

/**
 * Whether an event with one of Tributary's types is Tributary's: it is on one of its topics (or a
 * document's), where no other source can route (`publish`, outbox rows and CDC mappings are refused
 * there). An application's event of such a type elsewhere (a CDC mapping named so) is its own.
 */
export function isOwnEventType(event: { readonly topic: string; readonly type: string }): boolean {
  return isSystemEventType(event.type) && isReservedTopic(event.topic);
}

/** Tributary's topics and sync documents' (`sync.…`): no `publish`, outbox row or CDC mapping may route there. */
export function isReservedTopic(topic: string): boolean {
  return isSystemTopic(topic) || isDocumentTopic(topic);
}
