import { isAdmin, type Principal } from '../auth/principal.ts';
import type { AlertPage } from '../pipeline/alerts/alert-admin.ts';
import type { AlertState, Severity } from '../pipeline/alerts/alert-rule.ts';
import type { AlertRecord } from '../pipeline/alerts/alert-store.ts';
import { dispatchTicket, type DispatchTicket } from '../pipeline/dispatch/subscription-contract.ts';
import { ALERT_TOPIC, readAlertEvent } from '../pipeline/events/alert-event.ts';
import type { RealtimeEvent } from '../pipeline/events/envelope.ts';
import type { Scope } from '../pipeline/scope.ts';
import { streamOf } from '../pipeline/stream.ts';
import type { ResolverContext } from './context.ts';
import { isEnvironmentAdmin, requireAdmin } from './require-admin.ts';

/**
 * An alert as the API shows it — GraphQL's `Alert` and the REST route's answer, with the same
 * names — from a stored row or from an alert event's data (the same, with its app and env;
 * `readAlertEvent` reads an earlier version's too).
 */
export interface AlertView {
  readonly id: string;
  readonly rule: string;
  readonly subject: string;
  readonly tenant: string | null;
  readonly severity: Severity;
  readonly status: AlertState;
  readonly count: number;
  readonly value: number | null;
  readonly message: string;
  readonly firstFiredAt: Date;
  readonly lastFiredAt: Date;
  readonly acknowledgedAt: Date | null;
  readonly acknowledgedBy: string | null;
  readonly resolvedAt: Date | null;
}

export interface AlertViewPage {
  readonly nodes: readonly AlertView[];
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
}

/** One state change pushed by `alertUpdates`. */
export interface AlertUpdate {
  /** `alert.fired`, `alert.escalated`, `alert.acknowledged` or `alert.resolved`. */
  readonly type: string;
  readonly alert: AlertView;
}

export function viewOf(alert: AlertRecord): AlertView {
  return {
    id: alert.id,
    rule: alert.rule,
    subject: alert.subject,
    tenant: alert.scope.tenant ?? null,
    severity: alert.severity,
    status: alert.state,
    count: alert.count,
    value: alert.lastValue,
    message: alert.message,
    firstFiredAt: alert.firstFiredAt,
    lastFiredAt: alert.lastFiredAt,
    acknowledgedAt: alert.acknowledgedAt,
    acknowledgedBy: alert.acknowledgedBy,
    resolvedAt: alert.resolvedAt,
  };
}

function pageOf(page: AlertPage): AlertViewPage {
  return { nodes: page.nodes.map(viewOf), endCursor: page.endCursor, hasNextPage: page.hasNextPage };
}

export interface AlertsArgs {
  readonly status?: readonly AlertState[] | null;
  readonly severity?: readonly Severity[] | null;
  readonly first?: number | null;
  readonly after?: string | null;
}

/**
 * The alerts a caller sees: its environment's — its tenant's only when it administers one tenant.
 * The environment's admin sees them all, the development principal included (its tenant
 * `default` stands for every caller, as in `isEnvironmentAdmin`): else the environment-wide
 * alerts (outbox, CDC, cluster: no tenant) would be shown to no one in development mode.
 */
function alertScopeOf(principal: Principal): Scope {
  return { app: principal.app, env: principal.env, tenant: isEnvironmentAdmin(principal) ? undefined : principal.tenant };
}

/** `alerts`: the caller's environment's alerts (its tenant's only, when its token has one). */
export async function alerts(context: ResolverContext, args: AlertsArgs): Promise<AlertViewPage> {
  requireAdmin(context.principal);
  return pageOf(
    await context.services.alerts.list(alertScopeOf(context.principal), {
      states: args.status ?? undefined,
      severities: args.severity ?? undefined,
      first: args.first ?? undefined,
      after: args.after ?? undefined,
    }),
  );
}

export async function acknowledgeAlert(context: ResolverContext, id: string): Promise<AlertView> {
  requireAdmin(context.principal);
  return viewOf(await context.services.alerts.acknowledge(alertScopeOf(context.principal), id, context.principal.subject));
}

/**
 * `alertUpdates`: the environment's `system.alerts` stream, where alert events are routed (no
 * tenant: alerts belong to the environment's operators). A caller administering one tenant gets
 * that tenant's alerts only (`alertScopeOf`); only events Tributary itself routed (source
 * `system`) pass.
 */
export function subscribeAlertUpdates(context: ResolverContext): DispatchTicket {
  const { principal } = context;
  requireAdmin(principal);
  const { tenant } = alertScopeOf(principal);
  return dispatchTicket({
    stream: streamOf({ app: principal.app, env: principal.env, tenant: undefined }, ALERT_TOPIC),
    filter: (event) => event.source === 'system',
    // Per subscriber, not in the filter: subscribers with the same operation share one cohort
    // (and its filter) whatever their tenant.
    admit: tenant === undefined ? undefined : (event) => (event.payload['tenant'] === tenant ? 'deliver' : 'skip'),
    after: undefined,
    denied: false,
    // What `requireAdmin` checked: a refreshed token without the role ends it (its tenant cannot change).
    readableBy: isAdmin,
  });
}

/** The update an alert event carries (rendered once per cohort: synchronous, no context). */
export function alertUpdateOf(event: RealtimeEvent): AlertUpdate {
  const alert = readAlertEvent(event);
  const date = (value: string | null) => (value === null ? null : new Date(value));
  return {
    type: event.type,
    alert: {
      id: alert.alertId,
      rule: alert.rule,
      subject: alert.subject,
      tenant: alert.tenant,
      severity: alert.severity,
      status: alert.state,
      count: alert.count,
      value: alert.value,
      message: alert.message,
      firstFiredAt: new Date(alert.firstFiredAt),
      lastFiredAt: new Date(alert.lastFiredAt),
      acknowledgedAt: date(alert.acknowledgedAt),
      acknowledgedBy: alert.acknowledgedBy,
      resolvedAt: date(alert.resolvedAt),
    },
  };
}
