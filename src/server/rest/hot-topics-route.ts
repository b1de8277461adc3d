/** `GET /api/metrics/hot-topics?window=1m|15m|1h&by=events|fanout|latency_p99|bytes&limit=10&tenant=` — the `hotTopics` query. */
import type { HotTopicsOrder } from '../../pipeline/analytics/analytics-reader.ts';
import { hotTopics, type HotTopicsWindow } from '../../resolvers/analytics.ts';
import { badQuery, integerParam, singleParam, type RestRoute } from './rest-route.ts';

const WINDOWS: Readonly<Record<string, HotTopicsWindow>> = { '1m': 'oneMinute', '15m': 'fifteenMinutes', '1h': 'oneHour' };
const ORDERS: Readonly<Record<string, HotTopicsOrder>> = { events: 'events', fanout: 'fanout', latency_p99: 'latencyP99', bytes: 'bytes' };

export const hotTopicsRoute: RestRoute = async (context, query) => {
  const windowName = singleParam(query, 'window') ?? '1m';
  const byName = singleParam(query, 'by') ?? 'events';
  // Own keys only: `constructor`, `__proto__`… are keys of every object, not values.
  const window = Object.hasOwn(WINDOWS, windowName) ? WINDOWS[windowName] : undefined;
  const by = Object.hasOwn(ORDERS, byName) ? ORDERS[byName] : undefined;
  if (!window) throw badQuery('window', 'window must be 1m, 15m or 1h');
  if (!by) throw badQuery('by', 'by must be events, fanout, latency_p99 or bytes');
  // `tenant=` names no tenant: every tenant, as when absent.
  const tenant = singleParam(query, 'tenant') || undefined;
  const topics = await hotTopics(context, { window, by, limit: integerParam(query, 'limit') ?? 10, tenant });
  return { window: windowName, by: byName, topics };
};
