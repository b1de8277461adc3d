/**
 * The alerts section of the configuration (`ALERTS_*`): how often the rules are evaluated, the
 * window and minimum sample of rates, the hysteresis, and each rule's thresholds. Validated with
 * the rest in `config.ts`.
 */
import type { z } from 'zod';
import { integer } from './config-fields.ts';

export interface AlertsConfig {
  /** How often the rules are evaluated (by one workers process of the cluster), in ms. @default 5 s (the seed's tick) */
  readonly evaluateMs: number;
  /** The window rates and counts are taken over, in ms; at least twice `evaluateMs` (`alertTimingProblem`). @default 5 minutes */
  readonly windowMs: number;
  /** Webhook attempts an endpoint needs in the window before its failure rate is judged. @default 20 */
  readonly minSamples: number;
  /** Bad evaluations in a row before an alert fires. @default 2 */
  readonly fireAfter: number;
  /** Good evaluations in a row before an open alert resolves. @default 3 */
  readonly resolveAfter: number;
  /** An endpoint's failed share of attempts above this is critical (0–1). @default 0.5 */
  readonly webhookFailureCriticalRatio: number;
  /** … above this a warning (0–1, below the critical one). @default 0.2 */
  readonly webhookFailureWarningRatio: number;
  /** Dead letters one endpoint may get in the window before it is a warning. @default 0 */
  readonly deadLettersAllowed: number;
  /** Age of an outbox's oldest waiting row beyond which it is a warning, in s. @default 300 */
  readonly outboxMaxAgeSeconds: number;
  /** Outbox rows one outbox may set aside as dead in the window before it is a warning. @default 0 */
  readonly outboxDeadRowsAllowed: number;
  /** CDC replication lag beyond which it is a warning, in bytes. @default 100 MiB */
  readonly cdcMaxLagBytes: number;
  /** WAL a slot retains beyond which it is critical, in bytes. @default 1 GiB */
  readonly cdcMaxRetainedWalBytes: number;
  /** Row changes one CDC source may match but not route in the window before it is a warning. @default 0 */
  readonly cdcUnroutableRowsAllowed: number;
  /** A CDC slot whose `safe_wal_size` is under this share of the source's `max_slot_wal_keep_size` is critical, in % (`cdc.slot_at_risk`). @default 25 */
  readonly cdcSlotSafeWalPercent: number;
  /** Open sockets across the cluster beyond which it is a warning. @default 10000 (the seed's) */
  readonly maxConnections: number;
  /** RESYNC_REQUIRED answers across the cluster in the window beyond which it is a storm (warning). @default 1000 */
  readonly maxResyncs: number;
}

const MIB = 1024 * 1024;

export const alertsEnvironment = {
  ALERTS_EVALUATE_SECONDS: integer(1, 3600, 5),
  ALERTS_WINDOW_SECONDS: integer(1, 24 * 3600, 300),
  ALERTS_MIN_SAMPLES: integer(1, 1_000_000, 20),
  ALERTS_FIRE_AFTER: integer(1, 1000, 2),
  ALERTS_RESOLVE_AFTER: integer(1, 1000, 3),
  ALERTS_WEBHOOK_FAILURE_CRITICAL_PERCENT: integer(1, 100, 50),
  ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT: integer(0, 99, 20),
  ALERTS_DEAD_LETTERS_ALLOWED: integer(0, 1_000_000, 0),
  ALERTS_OUTBOX_MAX_AGE_SECONDS: integer(1, 30 * 24 * 3600, 300),
  ALERTS_OUTBOX_DEAD_ROWS_ALLOWED: integer(0, 1_000_000_000, 0),
  ALERTS_CDC_MAX_LAG_BYTES: integer(1, 1024 * 1024 * MIB, 100 * MIB),
  ALERTS_CDC_MAX_RETAINED_WAL_BYTES: integer(1, 1024 * 1024 * MIB, 1024 * MIB),
  ALERTS_CDC_UNROUTABLE_ROWS_ALLOWED: integer(0, 1_000_000_000, 0),
  // A share of the source's setting, not bytes: see SLOT_SAFE_WAL_PERCENT (`cdc-rules.ts`). At most
  // 90: the alert resolves from this / 0.9 % of the setting up (the dead band), which safe_wal_size reaches.
  ALERTS_CDC_SLOT_SAFE_WAL_PERCENT: integer(1, 90, 25),
  ALERTS_MAX_CONNECTIONS: integer(1, 100_000_000, 10_000),
  ALERTS_MAX_RESYNCS: integer(1, 100_000_000, 1000),
};

type AlertsEnvironment = z.output<z.ZodObject<typeof alertsEnvironment>>;

/**
 * What is wrong with the alerts' timing, in one line naming the settings, or undefined: a window
 * shorter than two evaluation intervals. Rates and counts over a window shorter than the time
 * between two readings of it leave whatever happened in between unseen, and a window no longer
 * than the interval never fired at all (its streaks were forgotten between two evaluations). Checked
 * where the rules are evaluated (the workers role: `start/workers.ts`), as MISCONFIGURED.
 */
export function alertTimingProblem(config: Pick<AlertsConfig, 'evaluateMs' | 'windowMs'>): string | undefined {
  if (config.windowMs >= 2 * config.evaluateMs) return undefined;
  return (
    `ALERTS_WINDOW_SECONDS=${config.windowMs / 1000} is shorter than 2 × ALERTS_EVALUATE_SECONDS (${(2 * config.evaluateMs) / 1000} s): ` +
    'each evaluation would judge less than the time since the last one. Raise ALERTS_WINDOW_SECONDS or lower ALERTS_EVALUATE_SECONDS'
  );
}

export function alertsConfigOf(env: AlertsEnvironment): AlertsConfig {
  return {
    evaluateMs: env.ALERTS_EVALUATE_SECONDS * 1000,
    windowMs: env.ALERTS_WINDOW_SECONDS * 1000,
    minSamples: env.ALERTS_MIN_SAMPLES,
    fireAfter: env.ALERTS_FIRE_AFTER,
    resolveAfter: env.ALERTS_RESOLVE_AFTER,
    webhookFailureCriticalRatio: env.ALERTS_WEBHOOK_FAILURE_CRITICAL_PERCENT / 100,
    webhookFailureWarningRatio: env.ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT / 100,
    deadLettersAllowed: env.ALERTS_DEAD_LETTERS_ALLOWED,
    outboxMaxAgeSeconds: env.ALERTS_OUTBOX_MAX_AGE_SECONDS,
    outboxDeadRowsAllowed: env.ALERTS_OUTBOX_DEAD_ROWS_ALLOWED,
    cdcMaxLagBytes: env.ALERTS_CDC_MAX_LAG_BYTES,
    cdcMaxRetainedWalBytes: env.ALERTS_CDC_MAX_RETAINED_WAL_BYTES,
    cdcUnroutableRowsAllowed: env.ALERTS_CDC_UNROUTABLE_ROWS_ALLOWED,
    cdcSlotSafeWalPercent: env.ALERTS_CDC_SLOT_SAFE_WAL_PERCENT,
    maxConnections: env.ALERTS_MAX_CONNECTIONS,
    maxResyncs: env.ALERTS_MAX_RESYNCS,
  };
}
