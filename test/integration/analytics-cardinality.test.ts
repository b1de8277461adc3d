/**
 * A flood of distinct topics cannot grow what analytics holds: each minute admits a bounded number
 * of topics — one tenant half of them at most — the rest counted under its environment's overflow
 * row (`~other`, shown in that environment's hot topics and topic stats), and `/metrics` carries no
 * per-topic series except the top-10 gauge.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { hotTopics, publishToTopics, testClock, topicStats } from '../helpers/analytics.ts';
import { metricValue } from '../helpers/events.ts';
import { createTestDatabase, waitFor } from '../helpers/index.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';

const TOPICS = 10_000;
const BOUND = 4_000;
/** What one tenant (here the development principal's, `default`) may take of the bound. */
const ADMITTED = BOUND / 2;

async function seriesWithTopic(server: TestServer): Promise<string[]> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return text.split('\n').filter((line) => !line.startsWith('#') && /[{,]topic="/.test(line));
}

describe('analytics cardinality', () => {
  it('stays bounded with 10,000 distinct topics: the environment’s overflow topic in memory and Postgres, at most 10 topic series in /metrics', { timeout: 180_000 }, async () => {
    const clock = testClock();
    const database = await createTestDatabase();
    const server = await startTestServer(
      {
        DATABASE_URL: database.url,
        ANALYTICS_FLUSH_SECONDS: '1',
        ANALYTICS_MAX_TOPICS: String(BOUND),
        GRAPHQL_MAX_ALIASES: '500',
        GRAPHQL_MAX_TOKENS: '100000',
        // One admin publishes the whole flood (and new topics) as fast as it can.
        PUBLISH_RATE_PER_SECOND: '10000000',
        TOPIC_NEW_STREAMS_PER_MINUTE: '10000000',
      },
      { now: clock.now },
    );
    const topics = Array.from({ length: TOPICS }, (_, index) => `flood.${index}`);
    await publishToTopics(server, topics, 500);
    expect(await metricValue(server, 'tributary_analytics_topics_overflowed_total')).toBe(TOPICS - ADMITTED);
    expect(await seriesWithTopic(server)).toEqual([]);
    // The clock jumps past the flush grace at once, so the minute must be in the store before it
    // moves: a second event on an admitted topic, counted after the flood, shows the push took it all.
    await publishToTopics(server, ['flood.0']);
    // The environment's overflow row ranks first.
    const hot = await waitFor(async () => {
      const topics = await hotTopics(server, { window: 'ONE_MINUTE', by: 'EVENTS', limit: 3 });
      return topics.find((entry) => entry.topic === 'flood.0')?.count === 2 && topics;
    }, { message: 'the flood never reached the minute store' });
    expect(hot && hot[0]).toMatchObject({ topic: '~other', tenant: null, count: TOPICS - ADMITTED });

    // Once the minute is over: the gauge shows its top 10, and Postgres holds the admitted topics plus the environment's overflow row.
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
        const { rows: counted } = await client.query<{ topics: number; events: number; other: number; overflows: number }>(
          `SELECT count(*) FILTER (WHERE topic LIKE 'flood.%')::int AS topics, sum(events_socket)::int AS events,
                  coalesce(sum(events_socket) FILTER (WHERE topic = '~other' AND app = 'default' AND env = 'default' AND tenant = ''), 0)::int AS other,
                  count(*) FILTER (WHERE topic = '~other')::int AS overflows FROM topic_stats_minute`,
        );
        return counted[0]!.topics > 0 && counted[0];
      }, { timeoutMs: 30_000 });
      expect(rows).toEqual({ topics: ADMITTED, events: TOPICS + 1, other: TOPICS - ADMITTED, overflows: 1 });
    } finally {
      await client.end();
    }
    // The overflow row is the environment's to read like a topic.
    const stats = await topicStats(server, { topic: '~other', granularity: 'HOUR', from: new Date(clock.now() - 3 * 3_600_000), to: new Date(clock.now() + 3_600_000) });
    expect(stats.map((bucket) => bucket.count)).toEqual([TOPICS - ADMITTED]);
  });
});
