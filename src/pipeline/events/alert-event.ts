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
 *
 * The event's data is the alert as the API shows it (`GET /api/alerts`, GraphQL's `Alert`: `id`,
 * `status`, values in lower case), with the `app` and `env` it belongs to — a relay shared by
 * environments tells where an alert comes from — and `endpointId` (`AlertEventData`). Earlier
 * versions sent `alertId` and `state` for `id` and `status`: both are still sent, for this version,
 * so receivers written for them keep working across the upgrade; events of an earlier version
 * (still in the log, or routed by a worker not upgraded yet) are read either way.
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

/** The alert as it is after the change, as the announcer hands it over (`readAlertEvent` gives it back). */
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
  /** The alert's environment: where it is routed, and said in its data. */
  readonly app: string;
  readonly env: string;
  readonly payload: AlertEventPayload;
}

/** An alert event's data: the API's alert (`id`, `status`), its environment, and this version's compatibility names. */
export interface AlertEventData extends Omit<AlertEventPayload, 'alertId' | 'state'> {
  readonly id: string;
  readonly app: string;
  readonly env: string;
  readonly status: AlertState;
  /** `id` under the name earlier versions sent: still sent in this version, to be dropped in the next. */
  readonly alertId: string;
  /** `status` under the name earlier versions sent: still sent in this version, to be dropped in the next. */
  readonly state: AlertState;
}

/** The data of the event announcing `payload`, its fields in the API's order, the earlier names last. */
function alertData({ app, env, payload: alert }: AlertEventInput): AlertEventData {
  return {
    id: alert.alertId,
    rule: alert.rule,
    subject: alert.subject,
    ...(alert.endpointId !== undefined && { endpointId: alert.endpointId }),
    app,
    env,
    tenant: alert.tenant,
    severity: alert.severity,
    status: alert.state,
    count: alert.count,
    value: alert.value,
    message: alert.message,
    firstFiredAt: alert.firstFiredAt,
    lastFiredAt: alert.lastFiredAt,
    acknowledgedAt: alert.acknowledgedAt,
    acknowledgedBy: alert.acknowledgedBy,
    resolvedAt: alert.resolvedAt,
    alertId: alert.alertId,
    state: alert.state,
  };
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
    payload: { ...alertData(input) },
  };
}

/**
 * Reads an alert event's data — this version's (`id`, `status`), or an earlier one's (`alertId`,
 * `state` only); throws the internal EVENT_SHAPE fault when it is not one.
 */
export function readAlertEvent(event: RealtimeEvent): AlertEventPayload {
  const p = event.payload;
  const text = (key: string, earlier?: string): string => {
    const value = p[key] === undefined && earlier !== undefined ? p[earlier] : p[key];
    if (typeof value !== 'string') throw eventShapeError('alert', event, `payload.${key} is not a string`);
    // Both names are written alike: data where they differ is not an alert event of ours.
    if (earlier !== undefined && p[earlier] !== undefined && p[earlier] !== value) throw eventShapeError('alert', event, `payload.${key} and payload.${earlier} differ`);
    return value;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[], earlier?: string): T => {
    const value = text(key, earlier);
    const known = allowed.find((item) => item === value);
    if (known === undefined) throw eventShapeError('alert', event, `payload.${key} is not one of ${allowed.join(', ')}`);
    return known;
  };
  const optionalText = (key: string): string | null => (typeof p[key] === 'string' ? p[key] : null);
  const endpointId = optionalText('endpointId');
  return {
    alertId: text('id', 'alertId'),
    rule: text('rule'),
    subject: text('subject'),
    ...(endpointId !== null && { endpointId }),
    tenant: optionalText('tenant'),
    severity: oneOf('severity', SEVERITIES),
    state: oneOf('status', STATES, 'state'),
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
