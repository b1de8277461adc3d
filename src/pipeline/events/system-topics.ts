/**
 * The topics Tributary routes its own events on — alerts, the dashboard, webhook endpoint notices,
 * flushed analytics minutes, the gateway's socket lifecycle. Nobody may publish there: subscribers
 * and webhook endpoints trust what arrives on them (an alert about an endpoint is kept from that
 * endpoint, a dashboard is shown to operators), so a client must not be able to forge one.
 */
import { ANALYTICS_SYSTEM_TOPIC } from './analytics-event.ts';
import { WEBHOOK_SYSTEM_TOPIC } from './webhook-event.ts';

/** Every topic under this prefix is Tributary's (`system.alerts`, `system.dashboard`, …). */
const SYSTEM_PREFIX = 'system.';
/** Tributary's topics outside it (named before the prefix existed), and the gateway's. */
const SYSTEM_TOPICS: ReadonlySet<string> = new Set([WEBHOOK_SYSTEM_TOPIC, ANALYTICS_SYSTEM_TOPIC]);
const GATEWAY_PREFIX = 'gateway.';

export function isSystemTopic(topic: string): boolean {
  return topic.startsWith(SYSTEM_PREFIX) || topic.startsWith(GATEWAY_PREFIX) || SYSTEM_TOPICS.has(topic);
}
