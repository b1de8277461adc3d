/**
 * Routes alert changes as events (`system.alerts`, see `events/alert-event.ts`) after they are
 * written, in the order they were written, and deletes each once routed. Every change is kept
 * (`alert_changes`) until then, so a change written but not announced (the process died, the
 * router failed) is announced by the next evaluation — before any later change of its alert, at
 * least once, with the same event id.
 */
import type { Queryable } from '../../db/database.ts';
import { alertEvent, type AlertEventPayload } from '../events/alert-event.ts';
import type { EventRouter } from '../router/event-router.ts';
import { endpointOfSubject } from './alert-rule.ts';
import { deleteAnnouncedChanges, listPendingChanges, type AlertRecord } from './alert-store.ts';

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

/**
 * Announces every change not announced yet, oldest first (a bounded batch); returns how many.
 * Stops at the first that cannot be routed — a later change of its alert must not overtake it —
 * and rejects with that error once the ones routed before it are deleted.
 */
export async function announcePending(db: Queryable, router: Pick<EventRouter, 'route'>): Promise<number> {
  const pending = await listPendingChanges(db, ANNOUNCE_BATCH);
  const routed: string[] = [];
  try {
    for (const { seq, alert } of pending) {
      await router.route(alertEvent({ kind: alert.lastChange, app: alert.scope.app, env: alert.scope.env, payload: alertPayload(alert) }));
      routed.push(seq);
    }
  } finally {
    await deleteAnnouncedChanges(db, routed);
  }
  return routed.length;
}
