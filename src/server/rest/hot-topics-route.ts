/** `GET /api/metrics/hot-topics?window=1m|15m|1h&by=events|fanout|latency_p99|bytes&limit=10&tenant=` — the `hotTopics` query. */
import type { HotTopicsOrder } from '../../pipeline/analytics/analytics-reader.ts';
import { hotTopics, type HotTopicsWindow } from '../../resolvers/analytics.ts';
import { badQuery, integerParam, type RestRoute } from './rest-route.ts';

const WINDOWS: Readonly<Record<string, HotTopicsWindow>> = { '1m': 'oneMinute', '15m': 'fifteenMinutes', '1h': 'oneHour' };
const ORDERS: Readonly<Record<string, HotTopicsOrder>> = { events: 'events', fanout: 'fanout', latency_p99: 'latencyP99', bytes: 'bytes' };

export const hotTopicsRoute: RestRoute = async (context, query) => {
  const windowName = query.get('window') ?? '1m';
  const byName = query.get('by') ?? 'events';
  const window = WINDOWS[windowName];
  const by = ORDERS[byName];
  if (!window) throw badQuery('window', 'window must be 1m, 15m or 1h');
  if (!by) throw badQuery('by', 'by must be events, fanout, latency_p99 or bytes');
  const topics = await hotTopics(context, { window, by, limit: integerParam(query, 'limit') ?? 10, tenant: query.get('tenant') });
  return { window: windowName, by: byName, topics };
};
