/**
 * The analytics section of the configuration (`ANALYTICS_*`): whether to count, how often the
 * workers flush closed minutes, how long minute, hour and day rows are kept, and the bound on
 * topics per minute. Validated with the rest in `config.ts`.
 */
import { z } from 'zod';
import { integer } from './config-fields.ts';

/** Per-topic analytics: every role counts and pushes; the workers flush to Postgres. */
export interface AnalyticsConfig {
  /** Count at all (`false`: nothing is counted; for measuring the overhead). @default true */
  readonly enabled: boolean;
  /** How often the workers write closed minutes to Postgres, in s. @default 60 */
  readonly flushSeconds: number;
  /** How often every instance pushes its counts to the cluster (what a dying instance loses), in ms: min(5 s, flush interval). */
  readonly pushIntervalMs: number;
  /**
   * After a minute's end, how long the workers wait for its last pushes before writing it, in ms:
   * the longest push interval any instance may use (`MAX_PUSH_INTERVAL_MS`) + 2 s — not this
   * process's own, since the instances of a cluster need not share ANALYTICS_FLUSH_SECONDS.
   */
  readonly flushGraceMs: number;
  /** Minute rows are kept this long, in ms. @default 14 days */
  readonly retentionMs: number;
  /** Hour rows are kept this long, in ms. @default 90 days */
  readonly hourRetentionMs: number;
  /** Day rows are kept this long, in ms. @default 730 days (2 years) */
  readonly dayRetentionMs: number;
  /** Distinct topics an instance counts per minute before the rest goes to one overflow topic. @default 10000 */
  readonly maxTopicsPerMinute: number;
}

/** The longest interval at which an instance pushes its counts (whatever its ANALYTICS_FLUSH_SECONDS), in ms. */
const MAX_PUSH_INTERVAL_MS = 5_000;

/** Slack on top of the push interval for a push under way (Redis round trips, a busy event loop), in ms. */
const PUSH_SLACK_MS = 2_000;

const DAY_MS = 24 * 3600 * 1000;

export const analyticsEnvironment = {
  ANALYTICS_ENABLED: z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  ANALYTICS_FLUSH_SECONDS: integer(1, 3600, 60),
  ANALYTICS_RETENTION_DAYS: integer(1, 3650, 14),
  ANALYTICS_HOUR_RETENTION_DAYS: integer(1, 3650, 90),
  ANALYTICS_DAY_RETENTION_DAYS: integer(1, 36_500, 730),
  ANALYTICS_MAX_TOPICS: integer(10, 1_000_000, 10_000),
};

type AnalyticsEnvironment = z.output<z.ZodObject<typeof analyticsEnvironment>>;

export function analyticsConfigOf(env: AnalyticsEnvironment): AnalyticsConfig {
  return {
    enabled: env.ANALYTICS_ENABLED !== 'false',
    flushSeconds: env.ANALYTICS_FLUSH_SECONDS,
    pushIntervalMs: Math.min(MAX_PUSH_INTERVAL_MS, env.ANALYTICS_FLUSH_SECONDS * 1000),
    flushGraceMs: MAX_PUSH_INTERVAL_MS + PUSH_SLACK_MS,
    retentionMs: env.ANALYTICS_RETENTION_DAYS * DAY_MS,
    hourRetentionMs: env.ANALYTICS_HOUR_RETENTION_DAYS * DAY_MS,
    dayRetentionMs: env.ANALYTICS_DAY_RETENTION_DAYS * DAY_MS,
    maxTopicsPerMinute: env.ANALYTICS_MAX_TOPICS,
  };
}
