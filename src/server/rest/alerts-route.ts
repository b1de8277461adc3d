/**
 * `GET /api/alerts?status=firing,acknowledged&severity=critical&first=50&after=<endCursor>` (the
 * seed's Alert Center endpoint) — the `alerts` query: the caller's environment's alerts.
 */
import type { AlertState, Severity } from '../../pipeline/alerts/alert-rule.ts';
import { alerts } from '../../resolvers/alerts.ts';
import { integerParam, listParam, singleParam, type RestRoute } from './rest-route.ts';

const STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved'];
const SEVERITIES: readonly Severity[] = ['warning', 'critical'];

export const alertsRoute: RestRoute = async (context, query) => {
  const page = await alerts(context, {
    status: listParam(query, 'status', STATES),
    severity: listParam(query, 'severity', SEVERITIES),
    first: integerParam(query, 'first'),
    after: singleParam(query, 'after'),
  });
  return { alerts: page.nodes, endCursor: page.endCursor, hasNextPage: page.hasNextPage };
};
