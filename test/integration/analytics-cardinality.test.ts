/**
 * A flood of distinct topics cannot grow what analytics holds: each minute admits a bounded number
 * of topics (the rest is one overflow topic, counted), and `/metrics` carries no per-topic series
 * except the top-10 gauge.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { hotTopics, publishToTopics, testClock } from '../helpers/analytics.ts';
import { metricValue } from '../helpers/events.ts';
import { createTestDatabase, waitFor } from '../helpers/index.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';

const TOPICS = 10_000;
const BOUND = 4_000;

async function seriesWithTopic(server: TestServer): Promise<string[]> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return text.split('\n').filter((line) => !line.startsWith('#') && /[{,]topic="/.test(line));
}

describe('analytics cardinality', () => {
  it('stays bounded with 10,000 distinct topics: an overflow topic in memory and Postgres, at most 10 topic series in /metrics', { timeout: 180_000 }, async () => {
    const clock = testClock();
    const database = await createTestDatabase();
    const server = await startTestServer(
      {
        DATABASE_URL: database.url,
        ANALYTICS_FLUSH_SECONDS: '1',
        ANALYTICS_MAX_TOPICS: String(BOUND),
        GRAPHQL_MAX_ALIASES: '500',
        GRAPHQL_MAX_TOKENS: '100000',
      },
      { now: clock.now },
    );
    const topics = Array.from({ length: TOPICS }, (_, index) => `flood.${index}`);
    await publishToTopics(server, topics, 500);
    expect(await metricValue(server, 'tributary_analytics_topics_overflowed_total')).toBe(TOPICS - BOUND);
    expect(await seriesWithTopic(server)).toEqual([]);
    // The clock jumps past the flush grace at once, so the minute must be in the store before it
    // moves: a second event on an admitted topic, counted after the flood, shows the push took it all.
    await publishToTopics(server, ['flood.0']);
    await waitFor(async () => (await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS', limit: 1 }))[0]?.count === 2, {
      message: 'the flood never reached the minute store',
    });

    // Once the minute is over: the gauge shows its top 10, and Postgres holds the bound plus one overflow row.
    clock.nextMinutes();
    const gauge = (await waitFor(async () => {
      const series = await seriesWithTopic(server);
      return series.length > 0 && series;
    })) as string[];
    expect(gauge).toHaveLength(10);
    expect(gauge.every((line) => line.startsWith('tributary_hot_topic_events_per_second{'))).toBe(true);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const rows = await waitFor(async () => {
        const { rows: counted } = await client.query<{ topics: number; events: number; other: number }>(
          `SELECT count(*)::int AS topics, sum(events_socket)::int AS events,
                  coalesce(sum(events_socket) FILTER (WHERE topic = '~other'), 0)::int AS other FROM topic_stats_minute`,
        );
        return counted[0]!.topics > 0 && counted[0];
      }, { timeoutMs: 30_000 });
      expect(rows).toEqual({ topics: BOUND + 1, events: TOPICS + 1, other: TOPICS - BOUND });
    } finally {
      await client.end();
    }
  });
});
