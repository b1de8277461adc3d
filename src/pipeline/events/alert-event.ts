/**
 * Alert state changes as events (source `system`, topic `system.alerts`), so a webhook endpoint
 * can forward them (Slack, a pager) and `alertUpdates` can push them: `alert.fired`,
 * `alert.escalated`, `alert.acknowledged`, `alert.resolved`.
 *
 * Routed in the alert's environment (app/env, no tenant): alerts belong to the environment's
 * operators, so an environment-wide endpoint receives every one; the payload names the tenant of
 * an alert that has one. An alert about an endpoint carries `endpointId` and is never delivered
 * to that endpoint (`aboutEndpoint`): a failing endpoint is not told about itself, so it cannot
 * feed its own failure rate.
 */
import type { RawEventInput, RealtimeEvent } from './envelope.ts';
import { stableEventId } from './event-id.ts';
import { eventShapeError } from './event-shape-error.ts';

export const ALERT_TOPIC = 'system.alerts';

export type Severity = 'warning' | 'critical';

export type AlertState = 'firing' | 'acknowledged' | 'resolved';

export type AlertEventKind = 'fired' | 'escalated' | 'acknowledged' | 'resolved';

const SEVERITIES: readonly Severity[] = ['warning', 'critical'];
const STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved'];

/** The payload of every alert event: the alert as it is after the change. */
export interface AlertEventPayload {
  readonly alertId: string;
  readonly rule: string;
  readonly subject: string;
  /** The webhook endpoint the alert is about, when it is about one. */
  readonly endpointId?: string;
  readonly tenant: string | null;
  readonly severity: Severity;
  readonly state: AlertState;
  readonly count: number;
  readonly value: number | null;
  readonly message: string;
  readonly firstFiredAt: string;
  readonly lastFiredAt: string;
  readonly acknowledgedAt: string | null;
  readonly acknowledgedBy: string | null;
  readonly resolvedAt: string | null;
}

export interface AlertEventInput {
  readonly kind: AlertEventKind;
  readonly app: string;
  readonly env: string;
  readonly payload: AlertEventPayload;
}

export function alertEvent(input: AlertEventInput): RawEventInput {
  const { payload } = input;
  return {
    source: 'system',
    topic: ALERT_TOPIC,
    type: `alert.${input.kind}`,
    scope: { app: input.app, env: input.env, tenant: undefined },
    // One alert's changes in order; the id is the same when the same change is routed again
    // (an evaluation retried after its write failed), so receivers de-duplicate it.
    entity: `alert:${payload.alertId}`,
    id: stableEventId('alert', payload.alertId, String(payload.count), input.kind, payload.severity),
    payload: { ...payload },
  };
}

/** Reads an alert event's payload; throws the internal EVENT_SHAPE fault when it is not one. */
export function readAlertEvent(event: RealtimeEvent): AlertEventPayload {
  const p = event.payload;
  const text = (key: string): string => {
    const value = p[key];
    if (typeof value !== 'string') throw eventShapeError('alert', event, `payload.${key} is not a string`);
    return value;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    const value = text(key);
    const known = allowed.find((item) => item === value);
    if (known === undefined) throw eventShapeError('alert', event, `payload.${key} is not one of ${allowed.join(', ')}`);
    return known;
  };
  const optionalText = (key: string): string | null => (typeof p[key] === 'string' ? p[key] : null);
  const endpointId = optionalText('endpointId');
  return {
    alertId: text('alertId'),
    rule: text('rule'),
    subject: text('subject'),
    ...(endpointId !== null && { endpointId }),
    tenant: optionalText('tenant'),
    severity: oneOf('severity', SEVERITIES),
    state: oneOf('state', STATES),
    count: typeof p['count'] === 'number' ? p['count'] : 0,
    value: typeof p['value'] === 'number' ? p['value'] : null,
    message: text('message'),
    firstFiredAt: text('firstFiredAt'),
    lastFiredAt: text('lastFiredAt'),
    acknowledgedAt: optionalText('acknowledgedAt'),
    acknowledgedBy: optionalText('acknowledgedBy'),
    resolvedAt: optionalText('resolvedAt'),
  };
}
