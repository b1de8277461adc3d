/**
 * Helpers for the analytics suites: a clock a test moves forward (a minute ends when the test
 * says, not after a real minute), the admin queries over HTTP, and publishing to many topics.
 */
import { bearer } from './events.ts';
import { postGraphQL, type GraphQLResponseBody, type TestServer } from './tributary.ts';

export interface TestClock {
  readonly now: () => number;
  /** Moves past the end of the current minute (and, with the default 2, past the flush grace). */
  nextMinutes(minutes?: number): void;
}

/**
 * A clock that stands still until the test moves it: counts never straddle a real minute boundary
 * a slow step happened to cross. (Latency is measured on the real clock, unaffected.)
 */
export function testClock(): TestClock {
  let time = Date.now();
  return { now: () => time, nextMinutes: (minutes = 2) => void (time += minutes * 60_000) };
}

export const BUCKET_FIELDS =
  'topic window startTime endTime count bySource { source count } deliveries bytes webhookDeliveries webhookFailures resyncs latencyP50Ms latencyP99Ms';

export interface StatsBucket {
  readonly topic: string;
  readonly window: string;
  readonly startTime: string;
  readonly endTime: string;
  readonly count: number;
  readonly bySource: readonly { source: string; count: number }[];
  readonly deliveries: number;
  readonly bytes: number;
  readonly webhookDeliveries: number;
  readonly webhookFailures: number;
  readonly resyncs: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
}

export interface HotTopicEntry {
  readonly topic: string;
  readonly tenant: string | null;
  readonly count: number;
  readonly deliveries: number;
  readonly bytes: number;
  readonly eventsPerSecond: number;
  readonly latencyP99Ms: number | null;
}

export function topicStatsRaw(
  server: TestServer,
  args: { topic: string; granularity: 'MINUTE' | 'HOUR' | 'DAY'; from: Date; to: Date; tenant?: string },
  token?: string,
): Promise<{ status: number; body: GraphQLResponseBody }> {
  return postGraphQL(
    server.graphqlUrl,
    {
      query: `query Stats($topic: String!, $granularity: StatsGranularity!, $from: DateTime!, $to: DateTime!, $tenant: String) {
        topicStats(topic: $topic, granularity: $granularity, from: $from, to: $to, tenant: $tenant) { ${BUCKET_FIELDS} }
      }`,
      variables: { ...args, from: args.from.toISOString(), to: args.to.toISOString() },
    },
    bearer(token),
  );
}

export async function topicStats(server: TestServer, args: Parameters<typeof topicStatsRaw>[1], token?: string): Promise<StatsBucket[]> {
  const { body } = await topicStatsRaw(server, args, token);
  if (body.errors) throw new Error(`topicStats failed: ${JSON.stringify(body.errors)}`);
  return body.data?.['topicStats'] as StatsBucket[];
}

export function hotTopicsRaw(
  server: TestServer,
  args: { window: 'ONE_MINUTE' | 'FIFTEEN_MINUTES' | 'ONE_HOUR'; by: 'EVENTS' | 'FANOUT' | 'LATENCY_P99' | 'BYTES'; limit?: number },
  token?: string,
): Promise<{ status: number; body: GraphQLResponseBody }> {
  return postGraphQL(
    server.graphqlUrl,
    {
      query: `query Hot($window: HotTopicsWindow!, $by: HotTopicsOrder!, $limit: Int) {
        hotTopics(window: $window, by: $by, limit: $limit) { topic tenant count deliveries bytes eventsPerSecond latencyP99Ms }
      }`,
      variables: args,
    },
    bearer(token),
  );
}

export async function hotTopics(server: TestServer, args: Parameters<typeof hotTopicsRaw>[1], token?: string): Promise<HotTopicEntry[]> {
  const { body } = await hotTopicsRaw(server, args, token);
  if (body.errors) throw new Error(`hotTopics failed: ${JSON.stringify(body.errors)}`);
  return body.data?.['hotTopics'] as HotTopicEntry[];
}

/** Publishes one event on each topic, `perRequest` aliased mutations per request (raise GRAPHQL_MAX_ALIASES to match). */
export async function publishToTopics(server: TestServer, topics: readonly string[], perRequest = 20, token?: string): Promise<void> {
  for (let start = 0; start < topics.length; start += perRequest) {
    const batch = topics.slice(start, start + perRequest);
    const fields = batch.map((topic, i) => `e${i}: publish(topic: ${JSON.stringify(topic)}, payload: {n: ${i}}) { id }`);
    const { body } = await postGraphQL(server.graphqlUrl, { query: `mutation { ${fields.join(' ')} }` }, bearer(token));
    if (body.errors !== undefined) throw new Error(`publish failed: ${JSON.stringify(body.errors)}`);
  }
}

/** `count` of a source in a bucket. */
export function sourceCount(bucket: StatsBucket, source: string): number {
  return bucket.bySource.find((entry) => entry.source === source)?.count ?? 0;
}

