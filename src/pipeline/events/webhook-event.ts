/**
 * Events Tributary tells about its webhooks (source `system`, topic `webhooks.endpoints`): an
 * endpoint disabled — by a `410 Gone`, or after failing without a success for too long — or its
 * backlog full (no more deliveries stored for it), so an alert rule or another endpoint can
 * forward it. Scoped to the endpoint's app/env (and tenant).
 * Never delivered to the endpoint it is about.
 *
 * A notice names the endpoint by id and its URL's origin (scheme, host, port) only: its subscribers
 * may hold fewer rights than the endpoint's admins, and a URL's path or query often carries a
 * credential (a Slack or Discord webhook URL is one).
 */
import type { RawEventInput, RealtimeEvent } from './envelope.ts';
import { stableEventId } from './event-id.ts';
import type { Scope } from '../scope.ts';
import { ALERT_TOPIC } from './alert-event.ts';

export const WEBHOOK_SYSTEM_TOPIC = 'webhooks.endpoints';

export interface EndpointDisabledInput {
  readonly scope: Scope;
  readonly endpointId: string;
  /** The endpoint's URL; only its origin is told. */
  readonly url: string;
  readonly reason: string;
  /** When it was disabled: with the endpoint, what identifies the notice (its id is the same each time it is routed). */
  readonly disabledAt: Date;
}

export function endpointDisabledEvent(input: EndpointDisabledInput): RawEventInput {
  return endpointNotice('endpoint.disabled', input.scope, input.endpointId, input.disabledAt, { origin: originOf(input.url), reason: input.reason });
}

export interface EndpointBacklogFullInput {
  readonly scope: Scope;
  readonly endpointId: string;
  /** The endpoint's URL; only its origin is told. */
  readonly url: string;
  /** Deliveries pending when it was found full, and the bound. */
  readonly pending: number;
  readonly limit: number;
  /** When it was marked full: with the endpoint, what identifies the notice. */
  readonly since: Date;
}

export function endpointBacklogFullEvent(input: EndpointBacklogFullInput): RawEventInput {
  const { url, pending, limit, since } = input;
  return endpointNotice('endpoint.backlog_full', input.scope, input.endpointId, since, { origin: originOf(url), pending, limit, since: since.toISOString() });
}

/** `https://hooks.example.com:8443` of a URL: no user, path, query or fragment. */
function originOf(url: string): string {
  return URL.parse(url)?.origin ?? 'null';
}

/** A notice about an endpoint, in its lane; its id is the same each time it is routed for the same `at`. */
function endpointNotice(type: string, scope: Scope, endpointId: string, at: Date, payload: Record<string, unknown>): RawEventInput {
  return {
    id: stableEventId(type, endpointId, at.toISOString()),
    source: 'system',
    topic: WEBHOOK_SYSTEM_TOPIC,
    type,
    scope,
    entity: `endpoint:${endpointId}`,
    payload: { endpointId, ...payload },
  };
}

/** System topics whose events may be about an endpoint (`payload.endpointId`). */
const ABOUT_ENDPOINT_TOPICS: ReadonlySet<string> = new Set([WEBHOOK_SYSTEM_TOPIC, ALERT_TOPIC]);

/**
 * The endpoint a system event is about (it must not be delivered there), if any: an endpoint's
 * notice (`webhooks.endpoints`) or an alert about it (`system.alerts`).
 */
export function aboutEndpoint(event: Pick<RealtimeEvent, 'topic' | 'source' | 'payload'>): string | undefined {
  if (event.source !== 'system' || !ABOUT_ENDPOINT_TOPICS.has(event.topic)) return undefined;
  const id = event.payload['endpointId'];
  return typeof id === 'string' ? id : undefined;
}
