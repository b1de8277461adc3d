/**
 * The cluster dashboard (issue 12 §3): every instance's latest report and the cluster they make,
 * for the operators — the environment admins (no tenant in the token) of the operators'
 * environment (`OPERATOR_SCOPE`), since it shows every application's traffic on the cluster. Read
 * on demand (`dashboard`, `GET /api/metrics/dashboard`) or pushed every tick (`dashboardUpdates`).
 */
import { ErrorCode, TributaryError } from '../errors.ts';
import type { Dashboard } from '../pipeline/dashboard/cluster-dashboard.ts';
import { dispatchTicket, type DispatchTicket } from '../pipeline/dispatch/subscription-contract.ts';
import { DASHBOARD_TOPIC, isDashboardEvent } from '../pipeline/events/dashboard-event.ts';
import type { RealtimeEvent } from '../pipeline/events/envelope.ts';
import { streamOf } from '../pipeline/stream.ts';
import type { ResolverContext } from './context.ts';
import { loggedRead } from './read-outage.ts';
import { isOperator, requireAdmin } from './require-admin.ts';

function requireOperator(context: ResolverContext): void {
  const { principal } = context;
  requireAdmin(principal);
  const { app, env } = context.services.dashboard.operatorScope;
  if (principal.app !== app || principal.env !== env) {
    throw new TributaryError(ErrorCode.FORBIDDEN, `The cluster dashboard is for the admins of the operators' environment (${app}/${env}, OPERATOR_SCOPE)`);
  }
  if (!isOperator(principal, { app, env })) {
    throw new TributaryError(
      ErrorCode.FORBIDDEN,
      `The cluster dashboard shows every application's traffic: it needs an admin token of ${app}/${env} without a tenant (this one is limited to tenant "${principal.tenant}")`,
    );
  }
}

/**
 * An environment admin of the operators' environment: what the dashboard asks of a caller. Not an
 * admin whose token names a tenant — one tenant's admin must not see every application's traffic,
 * as it may not act for its whole environment (`requireEnvironmentAdmin`).
 */
export async function dashboard(context: ResolverContext): Promise<Dashboard> {
  requireOperator(context);
  // Redis away: UNAVAILABLE (the report store says so), logged once an outage.
  return loggedRead(context, 'dashboard', () => context.services.dashboard.read());
}

/** `dashboardUpdates`: the operators' `system.dashboard` stream, one dashboard per tick. */
export function subscribeDashboardUpdates(context: ResolverContext): DispatchTicket {
  requireOperator(context);
  const { app, env } = context.services.dashboard.operatorScope;
  return dispatchTicket({
    stream: streamOf({ app, env, tenant: undefined }, DASHBOARD_TOPIC),
    // Only what Tributary routed (a publish on the topic is refused, but be sure).
    filter: (event) => isDashboardEvent(event),
    after: undefined,
    denied: false,
    // A refreshed token that is no longer an operator's (no admin role, or limited to a tenant) ends the subscription.
    readableBy: (next) => isOperator(next, { app, env }),
  });
}

/** The dashboard an event carries (rendered once per cohort: synchronous, no context). */
export function dashboardOf(event: RealtimeEvent): Dashboard {
  return event.payload as unknown as Dashboard;
}
