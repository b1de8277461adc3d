/**
 * The events section of the configuration (`EVENT_*`): what the topic logs keep, the embedded
 * log's memory bounds, the largest payload, how long publish keys are remembered, and the
 * per-subject rates of publishing and of new topic streams. Validated with the rest in `config.ts`.
 */
import { getHeapStatistics } from 'node:v8';
import type { z } from 'zod';
import { integer } from './config-fields.ts';

const MIB = 1024 * 1024;

/**
 * 256 MiB, or a quarter of V8's heap limit where that is less: the budget is estimated from the
 * events' JSON, and a log allowed the whole heap would crash the process it is bounded to protect.
 */
const DEFAULT_LOG_MAX_BYTES = Math.min(256 * MIB, Math.floor(getHeapStatistics().heap_size_limit / 4));

export interface EventsConfig {
  /** Events kept per topic log, at least (fewer beyond `logMaxBytes` embedded, `logStreamMaxBytes` with Redis). @default 10000 */
  readonly logMaxEvents: number;
  /** How long events stay resumable, in ms. @default 1 hour */
  readonly logMaxAgeMs: number;
  /**
   * Embedded mode (no Redis): estimated bytes of events all topic logs keep together; beyond it
   * the oldest events of any topic are dropped first. @default 256 MiB, or a quarter of the heap limit when less
   */
  readonly logMaxBytes: number;
  /**
   * Embedded mode (no Redis): topic logs kept, empty ones too (`topicCursor` makes one); beyond
   * it the least recently used one without subscribers is forgotten. @default 100000
   */
  readonly logMaxStreams: number;
  /**
   * With Redis: bytes of events' JSON one topic's log keeps; beyond it its oldest events are
   * dropped, as beyond `logMaxEvents`, except its newest. @default 64 MiB
   */
  readonly logStreamMaxBytes: number;
  /** Largest payload `publish` accepts, in bytes of JSON. @default 64 KiB */
  readonly maxPayloadBytes: number;
  /** How long a `publish` idempotency key is remembered, in ms. @default 24 hours */
  readonly publishKeyTtlMs: number;
  /**
   * Publishes and channel broadcasts one subject (app, env, tenant and token subject) may make per
   * second on one instance; admins included. @default 1000
   */
  readonly publishRatePerSecond: number;
  /** Topic streams one subject may create per minute, across instances with Redis (`topicCursor`, `events`, `document` on a topic without a history). @default 600 */
  readonly topicNewStreamsPerMinute: number;
}

export const eventsEnvironment = {
  EVENT_LOG_MAX_EVENTS: integer(10, 10_000_000, 10_000),
  EVENT_LOG_MAX_AGE_SECONDS: integer(1, 30 * 24 * 3600, 3600),
  EVENT_LOG_MAX_BYTES: integer(MIB, 1024 * 1024 * MIB, DEFAULT_LOG_MAX_BYTES),
  EVENT_LOG_MAX_STREAMS: integer(100, 100_000_000, 100_000),
  EVENT_LOG_STREAM_MAX_BYTES: integer(MIB, 1024 * 1024 * MIB, 64 * MIB),
  EVENT_MAX_PAYLOAD_BYTES: integer(64, 16 * MIB, 64 * 1024),
  EVENT_PUBLISH_KEY_TTL_SECONDS: integer(60, 30 * 24 * 3600, 24 * 3600),
  PUBLISH_RATE_PER_SECOND: integer(1, 10_000_000, 1000),
  TOPIC_NEW_STREAMS_PER_MINUTE: integer(1, 10_000_000, 600),
};

type EventsEnvironment = z.output<z.ZodObject<typeof eventsEnvironment>>;

export function eventsConfigOf(env: EventsEnvironment): EventsConfig {
  return {
    logMaxEvents: env.EVENT_LOG_MAX_EVENTS,
    logMaxAgeMs: env.EVENT_LOG_MAX_AGE_SECONDS * 1000,
    logMaxBytes: env.EVENT_LOG_MAX_BYTES,
    logMaxStreams: env.EVENT_LOG_MAX_STREAMS,
    logStreamMaxBytes: env.EVENT_LOG_STREAM_MAX_BYTES,
    maxPayloadBytes: env.EVENT_MAX_PAYLOAD_BYTES,
    publishKeyTtlMs: env.EVENT_PUBLISH_KEY_TTL_SECONDS * 1000,
    publishRatePerSecond: env.PUBLISH_RATE_PER_SECOND,
    topicNewStreamsPerMinute: env.TOPIC_NEW_STREAMS_PER_MINUTE,
  };
}
