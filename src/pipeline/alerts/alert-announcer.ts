/**
 * Routes alert changes as events (`system.alerts`, see `events/alert-event.ts`) after they are
 * written, in the order they were written, and deletes each once routed. Every change is kept
 * (`alert_changes`) until then, so a change written but not announced (the process died, the
 * router failed) is announced by the next evaluation — before any later change of its alert, at
 * least once, with the same event id.
 *
 * Announcing is exclusive cluster-wide: the acknowledging server and the evaluating worker are
 * different processes with routers of their own, and both announcing one list of changes would
 * route each twice — a slow copy of `alert.acknowledged` landing after the `alert.resolved` that
 * followed it. A transaction-scoped advisory lock is held from listing to deleting, so a second
 * announcer waits, then lists only what is left (a batch is bounded: the wait is short).
 */
import type { Database, Queryable } from '../../db/database.ts';
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

/** The announcers' lock (two int4 keys, as the other advisory locks named by text). */
const ANNOUNCER_LOCK = `SELECT pg_advisory_xact_lock(hashtext('tributary.alerts'), hashtext('announcer'))`;

/** The announcing under way per database in this process: one at a time, the next after it. */
const underWay = new WeakMap<Database, Promise<unknown>>();

/**
 * Announces every change not announced yet, oldest first (a bounded batch); returns how many.
 * Stops at the first that cannot be routed — a later change of its alert must not overtake it —
 * and rejects with that error once the ones routed before it are deleted. Waits for any other
 * announcing of the cluster (this process's first).
 */
export async function announcePending(db: Database, router: Pick<EventRouter, 'route'>): Promise<number> {
  const previous = underWay.get(db);
  const run = (async () => {
    await previous?.catch(() => undefined);
    const outcome =
      db.kind === 'embedded'
        ? // One process per embedded database, so this process's turn is the cluster's; and a
          // transaction held while routing would hold up the router's own writes (one connection).
          await announceBatch(db, router)
        : await db.transaction(async (tx) => {
            await tx.query(ANNOUNCER_LOCK);
            return announceBatch(tx, router);
          });
    if (outcome.failure) throw outcome.failure.error;
    return outcome.routed;
  })();
  underWay.set(db, run);
  try {
    return await run;
  } finally {
    if (underWay.get(db) === run) underWay.delete(db);
  }
}

/** Routes and deletes one batch; a routing failure is returned, so the deletions before it commit. */
async function announceBatch(db: Queryable, router: Pick<EventRouter, 'route'>): Promise<{ routed: number; failure?: { error: unknown } }> {
  const pending = await listPendingChanges(db, ANNOUNCE_BATCH);
  const routed: string[] = [];
  let failure: { error: unknown } | undefined;
  for (const { seq, alert } of pending) {
    try {
      await router.route(alertEvent({ kind: alert.lastChange, app: alert.scope.app, env: alert.scope.env, payload: alertPayload(alert) }));
    } catch (error) {
      failure = { error };
      break;
    }
    routed.push(seq);
  }
  await deleteAnnouncedChanges(db, routed);
  return { routed: routed.length, ...(failure && { failure }) };
}
