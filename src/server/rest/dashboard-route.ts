/** `GET /api/metrics/dashboard` (the seed's Admin UI Dashboard endpoint) — the `dashboard` query, times in ms since the epoch. */
import { dashboard } from '../../resolvers/dashboard.ts';
import type { RestRoute } from './rest-route.ts';

export const dashboardRoute: RestRoute = (context) => dashboard(context);
