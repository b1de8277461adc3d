/**
 * Routes alert changes as events (`system.alerts`, see `events/alert-event.ts`) after they are
 * written, and marks them announced. A change written but not announced (the process died, the
 * router failed) is announced by the next evaluation: at least once, with the same event id.
 */
import type { Queryable } from '../../db/database.ts';
import { alertEvent, type AlertEventPayload } from '../events/alert-event.ts';
import type { EventRouter } from '../router/event-router.ts';
import { endpointOfSubject } from './alert-rule.ts';
import { listUnannounced, markAnnounced, type AlertRecord } from './alert-store.ts';

/** Changes announced per call at most; the rest wait for the next. */
const ANNOUNCE_BATCH = 200;

export function alertPayload(alert: AlertRecord): AlertEventPayload {
  const endpointId = endpointOfSubject(alert.subject);
  return {
    alertId: alert.id,
    rule: alert.rule,
    subject: alert.subject,
    ...(endpointId !== undefined && { endpointId }),
    tenant: alert.scope.tenant ?? null,
    severity: alert.severity,
    state: alert.state,
    count: alert.count,
    value: alert.lastValue,
    message: alert.message,
    firstFiredAt: alert.firstFiredAt.toISOString(),
    lastFiredAt: alert.lastFiredAt.toISOString(),
    acknowledgedAt: alert.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: alert.acknowledgedBy,
    resolvedAt: alert.resolvedAt?.toISOString() ?? null,
  };
}

/** Routes one alert's last change and marks it announced. */
export async function announce(db: Queryable, router: Pick<EventRouter, 'route'>, alert: AlertRecord): Promise<void> {
  await router.route(alertEvent({ kind: alert.lastChange, app: alert.scope.app, env: alert.scope.env, payload: alertPayload(alert) }));
  await markAnnounced(db, alert);
}

/** Announces every change not announced yet (oldest first, a bounded batch); returns how many. */
export async function announcePending(db: Queryable, router: Pick<EventRouter, 'route'>): Promise<number> {
  const pending = await listUnannounced(db, ANNOUNCE_BATCH);
  for (const alert of pending) await announce(db, router, alert);
  return pending.length;
}
