/**
 * Flushed analytics minutes (source `system`, topic `analytics.minutes`): after the workers write
 * a minute to Postgres they route what it holds, per app/env (application-wide scope), in chunks
 * that never split a topic — the `statsUpdates` subscription reads them. Analytics never counts
 * this topic itself (it would report its own reports forever).
 */
import type { RawEventInput, RealtimeEvent } from './envelope.ts';
import { eventShapeError } from './event-shape-error.ts';

export const ANALYTICS_SYSTEM_TOPIC = 'analytics.minutes';

/** One topic of one tenant in one flushed minute. */
export interface TopicMinute {
  readonly topic: string;
  /** null: application-wide events. */
  readonly tenant: string | null;
  readonly eventsDatabase: number;
  readonly eventsSync: number;
  readonly eventsSocket: number;
  readonly eventsSystem: number;
  readonly deliveries: number;
  readonly bytes: number;
  readonly webhookDelivered: number;
  readonly webhookFailed: number;
  readonly resyncs: number;
  /** Latency counts per bucket (`latency-histogram.ts`); empty without live deliveries. */
  readonly latency: readonly number[];
}

export interface TopicMinutesPayload {
  /** Start of the minute (ISO 8601). */
  readonly startTime: string;
  readonly topics: readonly TopicMinute[];
}

export interface TopicMinutesInput {
  readonly app: string;
  readonly env: string;
  readonly minute: Date;
  readonly topics: readonly TopicMinute[];
}

export function topicMinutesEvent(input: TopicMinutesInput): RawEventInput {
  const payload: TopicMinutesPayload = { startTime: input.minute.toISOString(), topics: input.topics };
  return {
    source: 'system',
    topic: ANALYTICS_SYSTEM_TOPIC,
    type: 'analytics.minute',
    scope: { app: input.app, env: input.env, tenant: undefined },
    payload: payload as unknown as Readonly<Record<string, unknown>>,
  };
}

const NUMBERS = ['eventsDatabase', 'eventsSync', 'eventsSocket', 'eventsSystem', 'deliveries', 'bytes', 'webhookDelivered', 'webhookFailed', 'resyncs'] as const;

/** The payload of an `analytics.minute` event, checked. */
export function readTopicMinutes(event: RealtimeEvent): TopicMinutesPayload {
  const { startTime, topics } = event.payload;
  if (event.source !== 'system' || typeof startTime !== 'string' || !Array.isArray(topics)) {
    throw eventShapeError('analytics minute', event, 'expected a system event with startTime and topics');
  }
  for (const entry of topics as unknown[]) {
    const row = entry as Partial<Record<string, unknown>> | null;
    const valid =
      typeof row === 'object' &&
      row !== null &&
      typeof row['topic'] === 'string' &&
      (row['tenant'] === null || typeof row['tenant'] === 'string') &&
      NUMBERS.every((name) => typeof row[name] === 'number') &&
      Array.isArray(row['latency']);
    if (!valid) throw eventShapeError('analytics minute', event, 'a topic entry is malformed');
  }
  return { startTime, topics: topics as TopicMinute[] };
}
