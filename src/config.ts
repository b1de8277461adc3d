import { z } from 'zod';
import { alertsConfigOf, alertsEnvironment, type AlertsConfig } from './config-alerts.ts';
import { jwtSecretField, jwtSecretsField, type JwtSecret } from './config-auth.ts';
import { analyticsConfigOf, analyticsEnvironment, type AnalyticsConfig } from './config-analytics.ts';
import { eventsConfigOf, eventsEnvironment, type EventsConfig } from './config-events.ts';
import { outboxConfigOf, outboxEnvironment, type OutboxConfig } from './config-outbox.ts';
import { webhooksConfigOf, webhooksEnvironment, type WebhooksConfig } from './config-webhooks.ts';
import { hostAddress, integer, optionalString } from './config-fields.ts';

export type { EventsConfig } from './config-events.ts';
export type { OutboxConfig } from './config-outbox.ts';

/**
 * Configuration comes from environment variables only, is validated once at boot and then frozen.
 * An invalid value stops the process with one line naming the variable and what it needs.
 */

export type NodeEnv = 'development' | 'test' | 'production';
/**
 * What a process runs: `server` answers GraphQL over HTTP and WebSocket (and leads CDC readers),
 * `workers` runs background work (outbox pollers, webhook delivery), `all` both in one process.
 */
export type Role = 'all' | 'server' | 'workers';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export type AuthConfig =
  /** No verification configured and not in production: every caller is the development principal. */
  | { readonly mode: 'development' }
  | {
      readonly mode: 'jwt';
      /** `JWT_SECRET`: HS256 secret of tokens without a `kid`; of every HS256 token without `secrets`. */
      readonly secret?: string;
      /** `JWT_SECRETS`: HS256 secrets by key id; a token with a `kid` is checked with that kid's only. */
      readonly secrets?: readonly JwtSecret[];
      /** Remote JSON Web Key Set for RS256/ES256 tokens. */
      readonly jwksUrl?: string;
      readonly issuer?: string;
      readonly audience?: string;
    };

export interface Limits {
  /** Largest WebSocket message accepted, in bytes. @default 1 MiB */
  readonly wsMaxPayloadBytes: number;
  /** Time a new socket has to send `connection_init`, in ms. @default 3000 */
  readonly connectionInitTimeoutMs: number;
  /** Open sockets this instance accepts; more are refused at the upgrade with HTTP 503. @default 10000 */
  readonly maxConnections: number;
  /** Sockets one principal (app, env, tenant, subject) may hold here; more: close 1013. Not in development mode. @default 100 */
  readonly maxConnectionsPerSubject: number;
  /** Active subscriptions one socket may hold. @default 100 */
  readonly maxSubscriptionsPerConnection: number;
  /** Total size of one socket's active subscriptions' `subscribe` messages, in bytes. @default 4 MiB */
  readonly maxSubscriptionBytesPerConnection: number;
  /** Filters (as JSON) one principal's active subscriptions hold here, across its sockets, in bytes. Not in development mode. @default 256 KiB */
  readonly maxFilterBytesPerSubject: number;
  /** Largest HTTP request body, in bytes. @default 1 MiB */
  readonly httpMaxBodyBytes: number;
  /** Deepest selection set nesting in an operation. @default 12 */
  readonly maxDepth: number;
  /** Aliases in one operation. @default 20 */
  readonly maxAliases: number;
  /** Lexical tokens in one operation document. @default 2000 */
  readonly maxTokens: number;
  /** A socket whose token expired stays open this long for a `refreshAuth`, in ms. @default 0 */
  readonly tokenExpiryGraceMs: number;
  /** A socket is told this long before its token expires (a `ping` with `{ tokenExpiresAt }`), in ms; 0: never. @default 60000 */
  readonly tokenExpiryNoticeMs: number;
  /** Automatic persisted queries kept (LRU), per process; 0 turns APQ off. @default 1000 */
  readonly persistedQueriesMax: number;
}

export interface Config {
  readonly nodeEnv: NodeEnv;
  /** `TRIBUTARY_ROLE`. @default 'all' */
  readonly role: Role;
  readonly port: number;
  /**
   * @default '0.0.0.0'; '127.0.0.1' in development mode (no JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL) in the roles
   * that serve GraphQL (`all`, `server`): the workers role serves only `/health`, `/ready` and
   * `/metrics`, which its probes and Prometheus reach on the pod's address.
   */
  readonly host: string;
  /** Folder of the embedded database, used when `databaseUrl` is not set. */
  readonly dataDir: string;
  /** A DATA_DIR lock not refreshed this long is a crashed holder's, taken over (`data-dir-lock.ts`), in ms. @default 10000 */
  readonly dataDirLockStaleMs: number;
  readonly databaseUrl: string | undefined;
  readonly redisUrl: string | undefined;
  /** Prefix of every Redis key and channel, so deployments can share a Redis. @default 'trib:' */
  readonly redisKeyPrefix: string;
  /** How long a command waits for Redis's reply before it fails (UNAVAILABLE), in ms. @default 5000 */
  readonly redisCommandTimeoutMs: number;
  readonly auth: AuthConfig;
  readonly events: EventsConfig;
  readonly sync: SyncConfig;
  readonly cdc: CdcConfig;
  readonly outbox: OutboxConfig;
  readonly webhooks: WebhooksConfig;
  readonly alerts: AlertsConfig;
  /**
   * The operators' environment (`OPERATOR_SCOPE`, app/env): its admins see the whole cluster (the
   * dashboard), and cluster-wide alerts belong to it. @default default/default (the development
   * principal's, and a single-application setup's)
   */
  readonly operatorScope: { readonly app: string; readonly env: string };
  /** How often every instance reports to the cluster dashboard, in ms. @default 5 s (the seed's MetricsUpdater tick) */
  readonly dashboardTickMs: number;
  readonly analytics: AnalyticsConfig;
  readonly logLevel: LogLevel;
  readonly limits: Limits;
  readonly cors: CorsConfig;
  /** `METRICS_TOKEN`: the bearer token `/metrics` requires; unset: `/metrics` is open. */
  readonly metricsToken: string | undefined;
  /** Time a graceful shutdown may take before the process exits anyway, in ms. @default 10000 */
  readonly shutdownTimeoutMs: number;
}

/**
 * Which browser origins may call the HTTP API from another origin (`CORS_ORIGINS`). Tokens travel
 * in the `Authorization` header, never in cookies, so credentialed requests are never allowed.
 */
export interface CorsConfig {
  /**
   * `'*'`: any origin (the default outside production with JWT verification); a list: exactly
   * these origins (`scheme://host[:port]`); empty: none (the default in production, and in
   * development mode, where every caller is an admin).
   */
  readonly origins: '*' | readonly string[];
}

/** Sync documents; the cache settings apply when Redis is configured. */
export interface SyncConfig {
  /**
   * `sync` (default): a document write returns after Postgres committed it. `async`: after Redis
   * holds it, Postgres following right after (the seed's behaviour; see the README's loss window).
   */
  readonly durability: 'async' | 'sync';
  /** Lifetime of a clean cached document, in seconds. @default 600 */
  readonly docTtlSeconds: number;
  /** Period of the sweep that flushes dirty documents whose flush failed, in ms. @default 5000 */
  readonly sweepIntervalMs: number;
}

/**
 * Database CDC: what every reader uses on its source database. Slot and publication names are
 * per database (derived from its identity, or set per source with `setCdcSource`), not settings.
 */
export interface CdcConfig {
  /** How often sources and mappings are checked for changes, in ms. @default 1000 */
  readonly reloadIntervalMs: number;
  /** Leader election of the readers (with Redis): lease, heartbeat and follower poll, in ms. @default lease 4000 */
  readonly election: { readonly ttlMs: number; readonly heartbeatMs: number; readonly pollMs: number };
  /** How long raw changes stay in `cdc_events`, in ms. @default 1 day */
  readonly rawRetentionMs: number;
  /** `statement_timeout` of a `records` page read on a source database, in ms. @default 5000 */
  readonly recordsStatementTimeoutMs: number;
}

/** A configuration problem, reported as one line. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A setting that no longer exists: refused with what to do instead. */
const removedSetting = (instead: string) =>
  optionalString.refine((value) => value === undefined, { message: `is no longer supported: ${instead}` });

const urlWithProtocols = (protocols: readonly string[]) =>
  optionalString.refine(
    (value) => {
      if (value === undefined) return true;
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

const MIB = 1024 * 1024;

const environmentSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'test', 'production'], { message: 'must be development, test or production' })
    .optional()
    .default('development'),
  TRIBUTARY_ROLE: z.enum(['all', 'server', 'workers'], { message: 'must be all, server or workers' }).optional().default('all'),
  PORT: integer(0, 65_535, 4000),
  HOST: hostAddress,
  DATA_DIR: optionalString,
  DATA_DIR_LOCK_STALE_MS: integer(2000, 600_000, 10_000),
  DATABASE_URL: urlWithProtocols(['postgres:', 'postgresql:']),
  REDIS_URL: urlWithProtocols(['redis:', 'rediss:']),
  REDIS_KEY_PREFIX: optionalString.refine((value) => value === undefined || /^[A-Za-z0-9_:.-]{1,64}$/.test(value), {
    message: 'must be 1–64 characters of letters, digits and _ : . -',
  }),
  REDIS_COMMAND_TIMEOUT_MS: integer(100, 60_000, 5000),
  ...eventsEnvironment,
  SYNC_DURABILITY: z.enum(['async', 'sync'], { message: 'must be async or sync' }).optional().default('sync'),
  SYNC_DOC_TTL_SECONDS: integer(1, 30 * 24 * 3600, 600),
  SYNC_SWEEP_INTERVAL_MS: integer(100, 3_600_000, 5000),
  // Global names made every source on one Postgres server fight over one slot (issue 9, defect b):
  // refused with the way forward rather than ignored, which would silently leave the old slot
  // retaining WAL.
  CDC_SLOT_NAME: removedSetting('slots are named per source database now; give a source its own with setCdcSource(slotName:, publicationName:)'),
  CDC_PUBLICATION_NAME: removedSetting('publications are named per source database now; give a source its own with setCdcSource(publicationName:)'),
  CDC_RELOAD_INTERVAL_MS: integer(100, 600_000, 1000),
  CDC_LEADER_TTL_MS: integer(500, 120_000, 4000),
  CDC_EVENTS_RETENTION_SECONDS: integer(60, 90 * 24 * 3600, 24 * 3600),
  CDC_RECORDS_STATEMENT_TIMEOUT_MS: integer(100, 600_000, 5000),
  ...outboxEnvironment,
  ...webhooksEnvironment,
  ...alertsEnvironment,
  OPERATOR_SCOPE: optionalString.refine((value) => value === undefined || /^[^/\s]+\/[^/\s]+$/.test(value), {
    message: 'must be app/env (the environment whose admins operate the cluster)',
  }),
  ...analyticsEnvironment,
  DASHBOARD_TICK_SECONDS: integer(1, 60, 5),
  JWT_SECRET: jwtSecretField,
  JWT_SECRETS: jwtSecretsField,
  JWT_JWKS_URL: urlWithProtocols(['https:', 'http:']),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'must be one of fatal, error, warn, info, debug, trace, silent',
    })
    .optional()
    .default('info'),
  WS_MAX_PAYLOAD_BYTES: integer(1024, 64 * MIB, MIB),
  WS_CONNECTION_INIT_TIMEOUT_MS: integer(100, 60_000, 3000),
  WS_MAX_CONNECTIONS: integer(1, 1_000_000, 10_000),
  WS_MAX_CONNECTIONS_PER_SUBJECT: integer(1, 1_000_000, 100),
  WS_MAX_SUBSCRIPTIONS: integer(1, 10_000, 100),
  WS_MAX_SUBSCRIPTION_BYTES: integer(1024, 1024 * MIB, 4 * MIB),
  WS_MAX_FILTER_BYTES_PER_SUBJECT: integer(1024, 1024 * MIB, 256 * 1024),
  WS_TOKEN_EXPIRY_GRACE_MS: integer(0, 3_600_000, 0),
  WS_TOKEN_EXPIRY_NOTICE_MS: integer(0, 3_600_000, 60_000),
  APQ_MAX_ENTRIES: integer(0, 1_000_000, 1000),
  HTTP_MAX_BODY_BYTES: integer(1024, 64 * MIB, MIB),
  GRAPHQL_MAX_DEPTH: integer(2, 100, 12),
  GRAPHQL_MAX_ALIASES: integer(0, 1000, 20),
  GRAPHQL_MAX_TOKENS: integer(50, 100_000, 2000),
  SHUTDOWN_TIMEOUT_MS: integer(100, 60_000, 10_000),
  METRICS_TOKEN: optionalString.refine((value) => value === undefined || /^\S{16,}$/.test(value), { message: 'must be at least 16 characters long, without spaces' }),
  CORS_ORIGINS: optionalString.transform((value, ctx) => {
    if (value === undefined) return undefined;
    const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
    if (entries.includes('*')) return entries.length === 1 ? ('*' as const) : invalidOrigins(ctx, 'must be * alone or a list of origins');
    const wrong = entries.find((entry) => !isOrigin(entry));
    return wrong === undefined ? entries : invalidOrigins(ctx, `must be * or comma-separated origins like https://app.example.com (got "${wrong}")`);
  }),
});

function invalidOrigins(ctx: z.RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** `scheme://host[:port]` exactly as a browser sends it in `Origin` (no path, no trailing slash). */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

/** Reads and validates the configuration; throws `ConfigError` with a one-line message. */
/** Every variable Tributary reads (the others are not its settings: `config-unknown.ts`). */
export const SETTING_NAMES: readonly string[] = Object.keys(environmentSchema.shape);

export function loadConfig(environment: Readonly<Record<string, string | undefined>> = process.env): Config {
  const parsed = environmentSchema.safeParse(environment);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = issue?.path.join('.') ?? 'environment';
    throw new ConfigError(`Invalid configuration: ${variable} ${issue?.message ?? 'is invalid'}`);
  }
  const env = parsed.data;

  const jwtConfigured = env.JWT_SECRET !== undefined || env.JWT_SECRETS !== undefined || env.JWT_JWKS_URL !== undefined;
  if (!jwtConfigured && env.NODE_ENV === 'production') {
    throw new ConfigError(
      'Invalid configuration: JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL must be set when NODE_ENV=production (development mode would let anyone act as admin)',
    );
  }
  if (!jwtConfigured && (env.JWT_ISSUER !== undefined || env.JWT_AUDIENCE !== undefined)) {
    throw new ConfigError('Invalid configuration: JWT_ISSUER and JWT_AUDIENCE need JWT_SECRET or JWT_JWKS_URL');
  }

  // A role of its own shares its work with other processes through the platform database and Redis;
  // on the embedded default there is nothing to share (and one data folder admits one process).
  if (env.TRIBUTARY_ROLE !== 'all' && (env.DATABASE_URL === undefined || env.REDIS_URL === undefined)) {
    throw new ConfigError(
      `Invalid configuration: TRIBUTARY_ROLE=${env.TRIBUTARY_ROLE} needs DATABASE_URL and REDIS_URL (shared with the other processes); without them run everything in one process (TRIBUTARY_ROLE=all, npm start)`,
    );
  }

  // The embedded log would drop such an event as soon as it is placed: published, but resumable by no one.
  if (env.REDIS_URL === undefined && env.EVENT_LOG_MAX_BYTES < env.EVENT_MAX_PAYLOAD_BYTES) {
    throw new ConfigError('Invalid configuration: EVENT_LOG_MAX_BYTES must be at least EVENT_MAX_PAYLOAD_BYTES (the embedded log could not keep one event)');
  }
  if (env.ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT >= env.ALERTS_WEBHOOK_FAILURE_CRITICAL_PERCENT) {
    throw new ConfigError('Invalid configuration: ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT must be below ALERTS_WEBHOOK_FAILURE_CRITICAL_PERCENT');
  }

  const auth: AuthConfig = jwtConfigured
    ? {
        mode: 'jwt',
        ...(env.JWT_SECRET !== undefined && { secret: env.JWT_SECRET }),
        ...(env.JWT_SECRETS !== undefined && { secrets: env.JWT_SECRETS }),
        ...(env.JWT_JWKS_URL !== undefined && { jwksUrl: env.JWT_JWKS_URL }),
        ...(env.JWT_ISSUER !== undefined && { issuer: env.JWT_ISSUER }),
        ...(env.JWT_AUDIENCE !== undefined && { audience: env.JWT_AUDIENCE }),
      }
    : { mode: 'development' };

  return deepFreeze({
    nodeEnv: env.NODE_ENV,
    role: env.TRIBUTARY_ROLE,
    port: env.PORT,
    // Development mode makes every caller of GraphQL an admin: reachable from this machine only,
    // unless HOST says otherwise. The workers role serves no GraphQL, and its probes and
    // Prometheus reach it on the pod's address.
    host: env.HOST ?? (jwtConfigured || env.TRIBUTARY_ROLE === 'workers' ? '0.0.0.0' : '127.0.0.1'),
    dataDir: env.DATA_DIR ?? '.data',
    dataDirLockStaleMs: env.DATA_DIR_LOCK_STALE_MS,
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    redisKeyPrefix: env.REDIS_KEY_PREFIX ?? 'trib:',
    redisCommandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS,
    auth,
    events: eventsConfigOf(env),
    sync: {
      durability: env.SYNC_DURABILITY,
      docTtlSeconds: env.SYNC_DOC_TTL_SECONDS,
      sweepIntervalMs: env.SYNC_SWEEP_INTERVAL_MS,
    },
    cdc: {
      reloadIntervalMs: env.CDC_RELOAD_INTERVAL_MS,
      // Heartbeat and follower poll at a quarter of the lease: a dead leader is replaced within
      // about 1.25 × the TTL; a leader that stops cleanly at once (release signal).
      election: {
        ttlMs: env.CDC_LEADER_TTL_MS,
        heartbeatMs: Math.floor(env.CDC_LEADER_TTL_MS / 4),
        pollMs: Math.floor(env.CDC_LEADER_TTL_MS / 4),
      },
      rawRetentionMs: env.CDC_EVENTS_RETENTION_SECONDS * 1000,
      recordsStatementTimeoutMs: env.CDC_RECORDS_STATEMENT_TIMEOUT_MS,
    },
    outbox: outboxConfigOf(env),
    webhooks: webhooksConfigOf(env),
    alerts: alertsConfigOf(env),
    operatorScope: operatorScopeOf(env.OPERATOR_SCOPE),
    dashboardTickMs: env.DASHBOARD_TICK_SECONDS * 1000,
    analytics: analyticsConfigOf(env),
    logLevel: env.LOG_LEVEL,
    limits: {
      wsMaxPayloadBytes: env.WS_MAX_PAYLOAD_BYTES,
      connectionInitTimeoutMs: env.WS_CONNECTION_INIT_TIMEOUT_MS,
      maxConnections: env.WS_MAX_CONNECTIONS,
      maxConnectionsPerSubject: env.WS_MAX_CONNECTIONS_PER_SUBJECT,
      maxSubscriptionsPerConnection: env.WS_MAX_SUBSCRIPTIONS,
      maxSubscriptionBytesPerConnection: env.WS_MAX_SUBSCRIPTION_BYTES,
      maxFilterBytesPerSubject: env.WS_MAX_FILTER_BYTES_PER_SUBJECT,
      httpMaxBodyBytes: env.HTTP_MAX_BODY_BYTES,
      maxDepth: env.GRAPHQL_MAX_DEPTH,
      maxAliases: env.GRAPHQL_MAX_ALIASES,
      maxTokens: env.GRAPHQL_MAX_TOKENS,
      tokenExpiryGraceMs: env.WS_TOKEN_EXPIRY_GRACE_MS,
      tokenExpiryNoticeMs: env.WS_TOKEN_EXPIRY_NOTICE_MS,
      persistedQueriesMax: env.APQ_MAX_ENTRIES,
    },
    // Unset: any origin while developing with tokens; nothing cross-origin in production, nor in
    // development mode, where a page of any origin would act as the admin development principal.
    cors: { origins: env.CORS_ORIGINS ?? (env.NODE_ENV === 'production' || !jwtConfigured ? [] : '*') },
    metricsToken: env.METRICS_TOKEN,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
  });
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}

function operatorScopeOf(value: string | undefined): Config['operatorScope'] {
  const [app = 'default', env = 'default'] = value?.split('/') ?? [];
  return { app, env };
}
