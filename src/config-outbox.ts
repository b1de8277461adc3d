/**
 * The outbox section of the configuration (`OUTBOX_*`): the pollers' wait between polls, how long
 * processed rows stay, and how often the workers reload the sources and report each one's figures.
 * Validated with the rest in `config.ts`.
 */
import type { z } from 'zod';
import { integer } from './config-fields.ts';

/** The outbox pollers (workers role). */
export interface OutboxConfig {
  /** Wait between polls when the last one found less than a full batch, in ms. @default 1000 */
  readonly pollIntervalMs: number;
  /** Processed rows are deleted this long after they were routed, in ms. @default 7 days */
  readonly retentionMs: number;
  /**
   * How often the workers reload the sources (a new POLL source is picked up within it) and report
   * each one's figures for `outboxStatus` and `/metrics`; figures its database does not answer
   * within it are reported as an error. In ms, 100–5000: the readers of the figures judge them by
   * fixed windows (stale after 30 s, a rate over the last 15 s: six and three reports at 5 s), so
   * the interval may be shortened (tests), not lengthened. @default 5000
   */
  readonly reportIntervalMs: number;
}

export const outboxEnvironment = {
  OUTBOX_POLL_INTERVAL_MS: integer(10, 600_000, 1000),
  OUTBOX_RETENTION_SECONDS: integer(1, 90 * 24 * 3600, 7 * 24 * 3600),
  OUTBOX_REPORT_INTERVAL_MS: integer(100, 5000, 5000),
};

type OutboxEnvironment = z.output<z.ZodObject<typeof outboxEnvironment>>;

export function outboxConfigOf(env: OutboxEnvironment): OutboxConfig {
  return { pollIntervalMs: env.OUTBOX_POLL_INTERVAL_MS, retentionMs: env.OUTBOX_RETENTION_SECONDS * 1000, reportIntervalMs: env.OUTBOX_REPORT_INTERVAL_MS };
}
