/**
 * The cluster dashboard as an event (source `system`, topic `system.dashboard`, type
 * `dashboard.updated`), routed every few seconds in the operators' environment for
 * `dashboardUpdates` — live screens. Not a webhook event: a figure every few seconds is not news to
 * deliver, so the webhook tap leaves it out (`isDashboardEvent`).
 */
import type { RawEventInput, RealtimeEvent } from './envelope.ts';

export const DASHBOARD_TOPIC = 'system.dashboard';

/** `dashboard` is the cluster's (`dashboard/cluster-dashboard.ts`), a plain JSON object. */
export function dashboardEvent(scope: { readonly app: string; readonly env: string }, dashboard: object): RawEventInput {
  return {
    source: 'system',
    topic: DASHBOARD_TOPIC,
    type: 'dashboard.updated',
    scope: { app: scope.app, env: scope.env, tenant: undefined },
    payload: dashboard as unknown as Readonly<Record<string, unknown>>,
  };
}

export function isDashboardEvent(event: Pick<RealtimeEvent, 'topic' | 'source'>): boolean {
  return event.topic === DASHBOARD_TOPIC && event.source === 'system';
}
