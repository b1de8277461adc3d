/**
 * The webhooks section of the configuration (`WEBHOOK_*`): targets, the attempt's timeout, the
 * retry window, when an endpoint is disabled, each endpoint's backlog bound, the process's attempts
 * in flight, the log's retention, the body's size, how soon an endpoint changed elsewhere is
 * seen, the housekeeping's period, the retry curve's first delay, a delivery lease's margin and
 * how often deliveries no queued job names are looked for.
 * Validated with the rest in `config.ts`.
 */
import { z } from 'zod';
import { integer } from './config-fields.ts';

/** Webhook delivery (the workers role delivers; every role stores deliveries). */
export interface WebhooksConfig {
  /** Targets on loopback, private, link-local or metadata addresses are allowed (tests, development). @default false */
  readonly allowPrivateTargets: boolean;
  /** One attempt's limit, in ms. @default 10000 */
  readonly timeoutMs: number;
  /** How long a delivery is retried before it is dead-lettered, in ms. @default 3 days */
  readonly retryWindowMs: number;
  /** An endpoint failing without a success this long is disabled, in ms. @default 5 days */
  readonly disableAfterMs: number;
  /**
   * Deliveries one endpoint may have pending: past it the endpoint's backlog is full and no more are
   * stored for it until it is worked off (backlog-bound.ts). The workers count every endpoint's
   * pending deliveries every few seconds, ~0.5 µs a row (measured: 0.56 s at 1,000,000): a bound
   * far above the default makes that count the database's steady work. @default 1,000,000
   */
  readonly maxPendingPerEndpoint: number;
  /** Attempts in flight at once per worker process. @default 50 */
  readonly concurrency: number;
  /** Finished deliveries and attempts are kept this long, in ms. @default 30 days */
  readonly logRetentionMs: number;
  /** Largest body POSTed, in bytes; a larger event is sent without its data. @default 256 KiB */
  readonly maxBodyBytes: number;
  /**
   * How often every instance checks for endpoints created, changed or deleted on another instance,
   * in ms (a change made on an instance is seen there at once). Until then, the other instances
   * select and deliver with what they loaded last: an event for a deleted endpoint is not stored
   * (the insert skips it), one for a new endpoint is not stored for it, and a rotated secret, a new
   * URL, `enabled` or limit is not used yet (a rotation's overlap must be longer). @default 2000
   */
  readonly endpointRefreshMs: number;
  /** How long after one housekeeping run ends the next begins (backlog counts and bounds, log pruning, expired secrets), in ms. @default 5000 */
  readonly housekeepingIntervalMs: number;
  /** The retry curve's first delay (it doubles each retry up to 60 s), in ms. @default 1000 */
  readonly retryBaseMs: number;
  /**
   * A delivery a worker claims stays its own for 2 × `timeoutMs` plus this, in ms (room to record
   * the attempt): a worker that dies mid-attempt leaves it to the others that much later. @default 5000
   */
  readonly leaseMarginMs: number;
  /**
   * With Redis: how often each worker process looks for due deliveries no BullMQ job names (lost
   * with Redis's data, or a dead worker's once its lease ran out) and queues them, in ms. @default 5000
   */
  readonly reconcileIntervalMs: number;
}

const MIB = 1024 * 1024;

export const webhooksEnvironment = {
  WEBHOOK_ALLOW_PRIVATE_TARGETS: z.enum(['true', 'false'], { message: 'must be true or false' }).optional(),
  WEBHOOK_TIMEOUT_MS: integer(100, 120_000, 10_000),
  WEBHOOK_RETRY_WINDOW_SECONDS: integer(1, 30 * 24 * 3600, 3 * 24 * 3600),
  WEBHOOK_DISABLE_AFTER_SECONDS: integer(1, 90 * 24 * 3600, 5 * 24 * 3600),
  WEBHOOK_MAX_PENDING: integer(1, 100_000_000, 1_000_000),
  WEBHOOK_CONCURRENCY: integer(1, 1000, 50),
  WEBHOOK_LOG_RETENTION_SECONDS: integer(60, 365 * 24 * 3600, 30 * 24 * 3600),
  WEBHOOK_MAX_BODY_BYTES: integer(1024, 16 * MIB, 256 * 1024),
  WEBHOOK_ENDPOINT_REFRESH_MS: integer(100, 600_000, 2_000),
  WEBHOOK_HOUSEKEEPING_INTERVAL_MS: integer(100, 600_000, 5_000),
  WEBHOOK_RETRY_BASE_MS: integer(10, 60_000, 1_000),
  WEBHOOK_LEASE_MARGIN_MS: integer(100, 600_000, 5_000),
  WEBHOOK_RECONCILE_INTERVAL_MS: integer(100, 600_000, 5_000),
};

type WebhooksEnvironment = z.output<z.ZodObject<typeof webhooksEnvironment>>;

export function webhooksConfigOf(env: WebhooksEnvironment): WebhooksConfig {
  return {
    allowPrivateTargets: env.WEBHOOK_ALLOW_PRIVATE_TARGETS === 'true',
    timeoutMs: env.WEBHOOK_TIMEOUT_MS,
    retryWindowMs: env.WEBHOOK_RETRY_WINDOW_SECONDS * 1000,
    disableAfterMs: env.WEBHOOK_DISABLE_AFTER_SECONDS * 1000,
    maxPendingPerEndpoint: env.WEBHOOK_MAX_PENDING,
    concurrency: env.WEBHOOK_CONCURRENCY,
    logRetentionMs: env.WEBHOOK_LOG_RETENTION_SECONDS * 1000,
    maxBodyBytes: env.WEBHOOK_MAX_BODY_BYTES,
    endpointRefreshMs: env.WEBHOOK_ENDPOINT_REFRESH_MS,
    housekeepingIntervalMs: env.WEBHOOK_HOUSEKEEPING_INTERVAL_MS,
    retryBaseMs: env.WEBHOOK_RETRY_BASE_MS,
    leaseMarginMs: env.WEBHOOK_LEASE_MARGIN_MS,
    reconcileIntervalMs: env.WEBHOOK_RECONCILE_INTERVAL_MS,
  };
}
