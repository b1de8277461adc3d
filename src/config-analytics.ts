/**
 * The analytics section of the configuration (`ANALYTICS_*`): whether to count, how often the
 * workers flush closed minutes, how long minute rows are kept, and the bound on topics per minute.
 * Validated with the rest in `config.ts`.
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
  /** Minute rows are kept this long (hours and days stay), in ms. @default 14 days */
  readonly retentionMs: number;
  /** Distinct topics an instance counts per minute before the rest goes to one overflow topic. @default 10000 */
  readonly maxTopicsPerMinute: number;
}

export const analyticsEnvironment = {
  ANALYTICS_ENABLED: z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  ANALYTICS_FLUSH_SECONDS: integer(1, 3600, 60),
  ANALYTICS_RETENTION_DAYS: integer(1, 3650, 14),
  ANALYTICS_MAX_TOPICS: integer(10, 1_000_000, 10_000),
};

type AnalyticsEnvironment = z.output<z.ZodObject<typeof analyticsEnvironment>>;

export function analyticsConfigOf(env: AnalyticsEnvironment): AnalyticsConfig {
  return {
    enabled: env.ANALYTICS_ENABLED !== 'false',
    flushSeconds: env.ANALYTICS_FLUSH_SECONDS,
    pushIntervalMs: Math.min(5_000, env.ANALYTICS_FLUSH_SECONDS * 1000),
    retentionMs: env.ANALYTICS_RETENTION_DAYS * 24 * 3600 * 1000,
    maxTopicsPerMinute: env.ANALYTICS_MAX_TOPICS,
  };
}
