/**
 * What is counted per topic per minute, and its flat encoding (Redis hash fields).
 *
 * Terminology:
 * - topic key: a stream key (`streamOf(scope, topic).key`: app, env, tenant and topic), or an
 *   overflow row's (`overflowKeyOf`) for whatever came in after a minute already held its
 *   maximum of topics.
 * - minute: the start of a one-minute window, in ms since the epoch (a multiple of 60,000).
 */
import type { EventSource } from '../events/envelope.ts';
import { scopeKey } from '../scope.ts';
import { emptyHistogram, LATENCY_BUCKETS, mergeHistogram } from '../../latency-histogram.ts';

export const MINUTE_MS = 60_000;

/**
 * The topic of an environment's overflow row: what a minute counts beyond its bound, in the
 * environment it happened in (`overflowKeyOf`). No topic is named so (a name starts with a letter
 * or a digit: `pipeline/names.ts`).
 */
export const OVERFLOW_TOPIC = '~other';

/**
 * The overflow row of no environment, stored as app/env '' and topic `~other`: where every
 * environment's overflow went before it had one per environment. Still written when even the
 * overflow rows reach their bound (`recorder.ts`), and read as before: minutes an older version
 * pushed (Redis) or flushed (Postgres) hold it.
 */
export const OTHER_TOPIC_KEY = OVERFLOW_TOPIC;

/**
 * The overflow row of an environment (an `environmentOfTopicKey`), a topic key of its own —
 * application-wide (no tenant), topic `~other` — so it is pushed, stored and read with the
 * environment's topics, shown to its admins only; `OTHER_TOPIC_KEY` for no environment.
 */
export function overflowKeyOf(environment: string): string {
  return environment === OTHER_TOPIC_KEY ? OTHER_TOPIC_KEY : `${environment}|${OVERFLOW_TOPIC}`;
}

/** Whether a topic key is an overflow row (an environment's, or the one of no environment). */
export function isOverflowKey(topicKey: string): boolean {
  return topicKey === OTHER_TOPIC_KEY || topicKey.endsWith(`|${OVERFLOW_TOPIC}`);
}

/**
 * The environment of a topic key — the start its topic keys share, `scopeKey` of the app and env
 * without a tenant (`app:env:`) — or `OTHER_TOPIC_KEY` for the overflow row and for text that is
 * not a topic key.
 */
export function environmentOfTopicKey(topicKey: string): string {
  const app = topicKey.indexOf(':');
  const env = topicKey.indexOf(':', app + 1);
  const bar = topicKey.indexOf('|');
  return app >= 0 && env > app && bar > env ? topicKey.slice(0, env + 1) : OTHER_TOPIC_KEY;
}

/** The environment key (`environmentOfTopicKey`) of an app and env. */
export function environmentKey(app: string, env: string): string {
  return scopeKey({ app, env, tenant: undefined });
}

/** The counters of one topic in one minute (all whole numbers). */
export interface TopicCounts {
  eventsDatabase: number;
  eventsSync: number;
  eventsSocket: number;
  eventsSystem: number;
  /** Frames handed to subscribers' sockets (one event to N subscribers counts N). */
  deliveries: number;
  /** Payload bytes of those frames. */
  bytes: number;
  /** Webhook attempts that were delivered, and that were not (failed, gone, throttled, refused). */
  webhookDelivered: number;
  webhookFailed: number;
  /** Subscribers ended with RESYNC_REQUIRED. */
  resyncs: number;
  /** Publish → socket latency counts (`latency-histogram.ts` layout); undefined until a sample. */
  latency: number[] | undefined;
}

/** The scalar counters, in one order shared by the Redis encoding and the SQL columns. */
export const COUNTERS = [
  'eventsDatabase',
  'eventsSync',
  'eventsSocket',
  'eventsSystem',
  'deliveries',
  'bytes',
  'webhookDelivered',
  'webhookFailed',
  'resyncs',
] as const;

export type Counter = (typeof COUNTERS)[number];

/** The counter of events routed from a source. */
export function eventsCounter(source: EventSource): Counter {
  switch (source) {
    case 'database':
      return 'eventsDatabase';
    case 'sync':
      return 'eventsSync';
    case 'socket':
      return 'eventsSocket';
    case 'system':
      return 'eventsSystem';
  }
}

export function emptyCounts(): TopicCounts {
  return {
    eventsDatabase: 0,
    eventsSync: 0,
    eventsSocket: 0,
    eventsSystem: 0,
    deliveries: 0,
    bytes: 0,
    webhookDelivered: 0,
    webhookFailed: 0,
    resyncs: 0,
    latency: undefined,
  };
}

export function totalEvents(counts: TopicCounts): number {
  return counts.eventsDatabase + counts.eventsSync + counts.eventsSocket + counts.eventsSystem;
}

/** Adds `source` into `target`. */
export function mergeCounts(target: TopicCounts, source: TopicCounts): void {
  for (const counter of COUNTERS) target[counter] += source[counter];
  if (source.latency) mergeHistogram((target.latency ??= emptyHistogram()), source.latency);
}

/** Adds every topic of `source` into `target`. */
export function mergeTopics(target: Map<string, TopicCounts>, source: ReadonlyMap<string, TopicCounts>): void {
  for (const [key, counts] of source) {
    let into = target.get(key);
    if (!into) target.set(key, (into = emptyCounts()));
    mergeCounts(into, counts);
  }
}

/**
 * Takes every topic of `source` out of `target` (counts pushed since `source` was read stay);
 * a topic left with nothing is dropped.
 */
export function subtractTopics(target: Map<string, TopicCounts>, source: ReadonlyMap<string, TopicCounts>): void {
  for (const [key, counts] of source) {
    const into = target.get(key);
    if (!into) continue;
    for (const counter of COUNTERS) into[counter] -= counts[counter];
    if (into.latency && counts.latency) for (let i = 0; i < into.latency.length; i += 1) into.latency[i]! -= counts.latency[i] ?? 0;
    const left = COUNTERS.some((counter) => into[counter] !== 0) || (into.latency?.some((count) => count !== 0) ?? false);
    if (!left) target.delete(key);
  }
}

/** Short field names in Redis (a minute's hash can hold 100,000 fields). */
const FIELD_CODES: Readonly<Record<Counter, string>> = {
  eventsDatabase: 'ed',
  eventsSync: 'ey',
  eventsSocket: 'es',
  eventsSystem: 'ex',
  deliveries: 'd',
  bytes: 'b',
  webhookDelivered: 'wd',
  webhookFailed: 'wf',
  resyncs: 'r',
};
const COUNTER_OF_CODE = new Map<string, Counter>(COUNTERS.map((counter) => [FIELD_CODES[counter], counter]));

/**
 * The non-zero counters of a topic as `[field, increment]` pairs, fields `code|topicKey` (a
 * topic key never contains a newline; the code never contains `|`). Latency bucket `i` is `l<i>`.
 */
export function encodeCounts(topicKey: string, counts: TopicCounts, into: (string | number)[]): void {
  for (const counter of COUNTERS) {
    const value = counts[counter];
    if (value !== 0) into.push(`${FIELD_CODES[counter]}|${topicKey}`, value);
  }
  const latency = counts.latency;
  if (!latency) return;
  for (let index = 0; index < latency.length; index += 1) {
    if (latency[index] !== 0) into.push(`l${index}|${topicKey}`, latency[index]!);
  }
}

/**
 * Adds one encoded field into `topics` (the inverse of `encodeCounts`); `accept` filters by topic
 * key before anything is allocated. Unknown fields are ignored (written by a newer version).
 */
export function decodeField(topics: Map<string, TopicCounts>, field: string, value: number, accept?: (topicKey: string) => boolean): void {
  const bar = field.indexOf('|');
  if (bar < 1) return;
  const topicKey = field.slice(bar + 1);
  if (accept && !accept(topicKey)) return;
  const code = field.slice(0, bar);
  let counts = topics.get(topicKey);
  const counter = COUNTER_OF_CODE.get(code);
  if (counter !== undefined) {
    if (!counts) topics.set(topicKey, (counts = emptyCounts()));
    counts[counter] += value;
    return;
  }
  if (code[0] !== 'l') return;
  const index = Number(code.slice(1));
  if (!Number.isInteger(index) || index < 0 || index >= LATENCY_BUCKETS) return;
  if (!counts) topics.set(topicKey, (counts = emptyCounts()));
  (counts.latency ??= emptyHistogram())[index]! += value;
}
