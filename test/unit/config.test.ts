import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!!';

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected loadConfig to throw');
}

describe('configuration', () => {
  it('defaults to port 4000, the embedded database and development auth, on loopback only', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      nodeEnv: 'development',
      role: 'all',
      port: 4000,
      host: '127.0.0.1',
      dataDir: '.data',
      databaseUrl: undefined,
      redisUrl: undefined,
      auth: { mode: 'development' },
      logLevel: 'info',
      shutdownTimeoutMs: 10_000,
      metricsToken: undefined,
    });
  });

  it("bounds the embedded log by default: 100,000 streams and 256 MiB of events, or a quarter of the heap's limit when less", () => {
    const heapQuarter = Math.floor(getHeapStatistics().heap_size_limit / 4);
    expect(loadConfig({}).events).toMatchObject({ logMaxBytes: Math.min(256 * 1024 * 1024, heapQuarter), logMaxStreams: 100_000 });
  });

  it('listens on every interface by default once tokens are verified; an explicit HOST wins either way', () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).host).toBe('0.0.0.0');
    expect(loadConfig({ JWT_JWKS_URL: 'https://issuer.example/jwks.json' }).host).toBe('0.0.0.0');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(loadConfig({ JWT_SECRET: SECRET, HOST: '127.0.0.1' }).host).toBe('127.0.0.1');
  });

  it('keeps every interface in the workers role without tokens (it serves no GraphQL, and its probes come from outside)', () => {
    const shared = { DATABASE_URL: 'postgres://db.example/platform', REDIS_URL: 'redis://redis.example:6379' };
    expect(loadConfig({ ...shared, TRIBUTARY_ROLE: 'workers' }).host).toBe('0.0.0.0');
    expect(loadConfig({ ...shared, TRIBUTARY_ROLE: 'workers', HOST: '127.0.0.1' }).host).toBe('127.0.0.1');
    expect(loadConfig({ ...shared, TRIBUTARY_ROLE: 'server' }).host).toBe('127.0.0.1');
    expect(loadConfig({ ...shared, TRIBUTARY_ROLE: 'all' }).host).toBe('127.0.0.1');
  });

  it('reads METRICS_TOKEN, refusing one shorter than 16 characters or with spaces', () => {
    expect(loadConfig({ METRICS_TOKEN: ' 0123456789abcdef ' }).metricsToken).toBe('0123456789abcdef');
    expect(configError({ METRICS_TOKEN: '0123456789abcde' })).toBe('Invalid configuration: METRICS_TOKEN must be at least 16 characters long, without spaces');
    expect(configError({ METRICS_TOKEN: '01234567 89abcdef' })).toBe('Invalid configuration: METRICS_TOKEN must be at least 16 characters long, without spaces');
  });

  it("defaults alerts to the seed's rules: a 5 s tick, 20 attempts in 5 minutes, 50 % critical, 20 % warning, 10,000 connections", () => {
    expect(loadConfig({}).alerts).toMatchObject({
      evaluateMs: 5000,
      windowMs: 300_000,
      minSamples: 20,
      fireAfter: 2,
      resolveAfter: 3,
      webhookFailureCriticalRatio: 0.5,
      webhookFailureWarningRatio: 0.2,
      maxConnections: 10_000,
    });
    expect(loadConfig({}).operatorScope).toEqual({ app: 'default', env: 'default' });
    expect(loadConfig({}).dashboardTickMs).toBe(5000);
  });

  it('counts analytics by default: flushed every 60 s, pushed every 5 s, minutes kept 14 days, 10,000 topics a minute', () => {
    expect(loadConfig({}).analytics).toEqual({
      enabled: true,
      flushSeconds: 60,
      pushIntervalMs: 5000,
      flushGraceMs: 7000,
      retentionMs: 14 * 86_400_000,
      hourRetentionMs: 90 * 86_400_000,
      dayRetentionMs: 730 * 86_400_000,
      maxTopicsPerMinute: 10_000,
    });
    // The grace is any instance's longest push interval + 2 s, not this process's own.
    expect(loadConfig({ ANALYTICS_FLUSH_SECONDS: '1' }).analytics).toMatchObject({ flushSeconds: 1, pushIntervalMs: 1000, flushGraceMs: 7000 });
  });

  it('keeps the waits it had before they were settings: the DATA_DIR lock, the outbox reports, webhook housekeeping, retries and leases', () => {
    const config = loadConfig({});
    expect(config.dataDirLockStaleMs).toBe(10_000);
    expect(config.outbox.reportIntervalMs).toBe(5000);
    expect(config.webhooks).toMatchObject({ housekeepingIntervalMs: 5000, retryBaseMs: 1000, leaseMarginMs: 5000, reconcileIntervalMs: 5000 });
  });

  it('is frozen, limits included', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      TRIBUTARY_ROLE: 'workers',
      PORT: '8080',
      HOST: '127.0.0.1',
      DATA_DIR: '/var/lib/tributary',
      DATA_DIR_LOCK_STALE_MS: '4000',
      DATABASE_URL: 'postgres://u:p@db:5432/platform',
      REDIS_URL: 'redis://cache:6379/0',
      REDIS_KEY_PREFIX: 'shop-prod:',
      REDIS_COMMAND_TIMEOUT_MS: '2500',
      EVENT_LOG_MAX_EVENTS: '500',
      EVENT_LOG_MAX_AGE_SECONDS: '60',
      EVENT_LOG_MAX_BYTES: '2097152',
      EVENT_LOG_MAX_STREAMS: '5000',
      EVENT_LOG_STREAM_MAX_BYTES: '3145728',
      EVENT_MAX_PAYLOAD_BYTES: '1024',
      EVENT_PUBLISH_KEY_TTL_SECONDS: '600',
      PUBLISH_RATE_PER_SECOND: '2000',
      TOPIC_NEW_STREAMS_PER_MINUTE: '120',
      SYNC_DURABILITY: 'async',
      SYNC_DOC_TTL_SECONDS: '30',
      SYNC_SWEEP_INTERVAL_MS: '250',
      CDC_RELOAD_INTERVAL_MS: '500',
      CDC_LEADER_TTL_MS: '2000',
      CDC_EVENTS_RETENTION_SECONDS: '3600',
      CDC_RECORDS_STATEMENT_TIMEOUT_MS: '1500',
      OUTBOX_POLL_INTERVAL_MS: '250',
      OUTBOX_RETENTION_SECONDS: '86400',
      OUTBOX_REPORT_INTERVAL_MS: '750',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_TIMEOUT_MS: '3000',
      WEBHOOK_RETRY_WINDOW_SECONDS: '7200',
      WEBHOOK_DISABLE_AFTER_SECONDS: '3600',
      WEBHOOK_MAX_PENDING: '5000',
      WEBHOOK_CONCURRENCY: '8',
      WEBHOOK_LOG_RETENTION_SECONDS: '600',
      WEBHOOK_MAX_BODY_BYTES: '4096',
      WEBHOOK_ENDPOINT_REFRESH_MS: '60000',
      WEBHOOK_HOUSEKEEPING_INTERVAL_MS: '400',
      WEBHOOK_RETRY_BASE_MS: '50',
      WEBHOOK_LEASE_MARGIN_MS: '300',
      WEBHOOK_RECONCILE_INTERVAL_MS: '700',
      ALERTS_EVALUATE_SECONDS: '1',
      ALERTS_WINDOW_SECONDS: '60',
      ALERTS_MIN_SAMPLES: '4',
      ALERTS_FIRE_AFTER: '3',
      ALERTS_RESOLVE_AFTER: '4',
      ALERTS_WEBHOOK_FAILURE_CRITICAL_PERCENT: '80',
      ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT: '10',
      ALERTS_DEAD_LETTERS_ALLOWED: '2',
      ALERTS_OUTBOX_MAX_AGE_SECONDS: '30',
      ALERTS_OUTBOX_DEAD_ROWS_ALLOWED: '4',
      ALERTS_CDC_MAX_LAG_BYTES: '1000',
      ALERTS_CDC_UNROUTABLE_ROWS_ALLOWED: '6',
      ALERTS_CDC_MAX_RETAINED_WAL_BYTES: '2000',
      ALERTS_CDC_SLOT_SAFE_WAL_PERCENT: '40',
      ALERTS_MAX_CONNECTIONS: '500',
      ALERTS_MAX_RESYNCS: '50',
      OPERATOR_SCOPE: 'ops/prod',
      DASHBOARD_TICK_SECONDS: '2',
      ANALYTICS_ENABLED: 'false',
      ANALYTICS_FLUSH_SECONDS: '2',
      ANALYTICS_RETENTION_DAYS: '3',
      ANALYTICS_HOUR_RETENTION_DAYS: '4',
      ANALYTICS_DAY_RETENTION_DAYS: '5',
      ANALYTICS_MAX_TOPICS: '500',
      JWT_SECRET: SECRET,
      JWT_JWKS_URL: 'https://issuer.example/.well-known/jwks.json',
      JWT_ISSUER: 'https://issuer.example/',
      JWT_AUDIENCE: 'tributary',
      LOG_LEVEL: 'warn',
      WS_MAX_PAYLOAD_BYTES: '4096',
      WS_CONNECTION_INIT_TIMEOUT_MS: '500',
      WS_MAX_CONNECTIONS: '900',
      WS_MAX_CONNECTIONS_PER_SUBJECT: '9',
      WS_MAX_SUBSCRIPTIONS: '7',
      WS_MAX_SUBSCRIPTION_BYTES: '65536',
      WS_MAX_FILTER_BYTES_PER_SUBJECT: '32768',
      WS_TOKEN_EXPIRY_GRACE_MS: '2500',
      WS_TOKEN_EXPIRY_NOTICE_MS: '30000',
      APQ_MAX_ENTRIES: '50',
      HTTP_MAX_BODY_BYTES: '2048',
      GRAPHQL_MAX_DEPTH: '5',
      GRAPHQL_MAX_ALIASES: '3',
      GRAPHQL_MAX_TOKENS: '100',
      SHUTDOWN_TIMEOUT_MS: '2000',
      CORS_ORIGINS: 'https://app.example',
      METRICS_TOKEN: 'scrape-token-0123456789',
    });
    expect(config).toEqual({
      nodeEnv: 'production',
      role: 'workers',
      port: 8080,
      host: '127.0.0.1',
      dataDir: '/var/lib/tributary',
      dataDirLockStaleMs: 4000,
      databaseUrl: 'postgres://u:p@db:5432/platform',
      redisUrl: 'redis://cache:6379/0',
      redisKeyPrefix: 'shop-prod:',
      redisCommandTimeoutMs: 2500,
      events: { logMaxEvents: 500, logMaxAgeMs: 60_000, logMaxBytes: 2 * 1024 * 1024, logMaxStreams: 5000, logStreamMaxBytes: 3 * 1024 * 1024, maxPayloadBytes: 1024, publishKeyTtlMs: 600_000, publishRatePerSecond: 2000, topicNewStreamsPerMinute: 120 },
      sync: { durability: 'async', docTtlSeconds: 30, sweepIntervalMs: 250 },
      cdc: {
        reloadIntervalMs: 500,
        election: { ttlMs: 2000, heartbeatMs: 500, pollMs: 500 },
        rawRetentionMs: 3_600_000,
        recordsStatementTimeoutMs: 1500,
      },
      outbox: { pollIntervalMs: 250, retentionMs: 86_400_000, reportIntervalMs: 750 },
      webhooks: {
        allowPrivateTargets: true,
        timeoutMs: 3000,
        retryWindowMs: 7_200_000,
        disableAfterMs: 3_600_000,
        maxPendingPerEndpoint: 5000,
        concurrency: 8,
        logRetentionMs: 600_000,
        maxBodyBytes: 4096,
        endpointRefreshMs: 60_000,
        housekeepingIntervalMs: 400,
        retryBaseMs: 50,
        leaseMarginMs: 300,
        reconcileIntervalMs: 700,
      },
      alerts: {
        evaluateMs: 1000,
        windowMs: 60_000,
        minSamples: 4,
        fireAfter: 3,
        resolveAfter: 4,
        webhookFailureCriticalRatio: 0.8,
        webhookFailureWarningRatio: 0.1,
        deadLettersAllowed: 2,
        outboxMaxAgeSeconds: 30,
        outboxDeadRowsAllowed: 4,
        cdcMaxLagBytes: 1000,
        cdcUnroutableRowsAllowed: 6,
        cdcMaxRetainedWalBytes: 2000,
        cdcSlotSafeWalPercent: 40,
        maxConnections: 500,
        maxResyncs: 50,
      },
      operatorScope: { app: 'ops', env: 'prod' },
      dashboardTickMs: 2000,
      analytics: {
        enabled: false,
        flushSeconds: 2,
        pushIntervalMs: 2000,
        flushGraceMs: 7000,
        retentionMs: 3 * 86_400_000,
        hourRetentionMs: 4 * 86_400_000,
        dayRetentionMs: 5 * 86_400_000,
        maxTopicsPerMinute: 500,
      },
      auth: {
        mode: 'jwt',
        secret: SECRET,
        jwksUrl: 'https://issuer.example/.well-known/jwks.json',
        issuer: 'https://issuer.example/',
        audience: 'tributary',
      },
      logLevel: 'warn',
      limits: {
        wsMaxPayloadBytes: 4096,
        connectionInitTimeoutMs: 500,
        maxConnections: 900,
        maxConnectionsPerSubject: 9,
        maxSubscriptionsPerConnection: 7,
        maxSubscriptionBytesPerConnection: 65_536,
        maxFilterBytesPerSubject: 32_768,
        httpMaxBodyBytes: 2048,
        maxDepth: 5,
        maxAliases: 3,
        maxTokens: 100,
        tokenExpiryGraceMs: 2500,
        tokenExpiryNoticeMs: 30_000,
        persistedQueriesMax: 50,
      },
      cors: { origins: ['https://app.example'] },
      metricsToken: 'scrape-token-0123456789',
      shutdownTimeoutMs: 2000,
    });
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be an integer from 0 to 65535 (got "abc")'],
    [{ TRIBUTARY_ROLE: 'scheduler' }, 'TRIBUTARY_ROLE must be all, server or workers'],
    [{ TRIBUTARY_ROLE: 'server', DATABASE_URL: 'postgres://db/platform' }, 'TRIBUTARY_ROLE=server needs DATABASE_URL and REDIS_URL'],
    [{ PORT: '70000' }, 'PORT must be an integer from 0 to 65535'],
    [{ PORT: '12.5' }, 'PORT must be an integer'],
    [{ DATABASE_URL: 'mysql://localhost/db' }, 'DATABASE_URL must be a URL starting with postgres:// or postgresql://'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL must be a URL'],
    [{ REDIS_URL: 'http://localhost' }, 'REDIS_URL must be a URL starting with redis:// or rediss://'],
    [{ REDIS_KEY_PREFIX: 'has space' }, 'REDIS_KEY_PREFIX must be 1–64 characters'],
    [{ REDIS_COMMAND_TIMEOUT_MS: '50' }, 'REDIS_COMMAND_TIMEOUT_MS must be an integer from 100 to 60000'],
    [{ EVENT_LOG_MAX_EVENTS: '5' }, 'EVENT_LOG_MAX_EVENTS must be an integer from 10 to 10000000'],
    [{ EVENT_LOG_MAX_BYTES: '65536' }, 'EVENT_LOG_MAX_BYTES must be an integer from 1048576 to 1099511627776'],
    [{ EVENT_LOG_MAX_STREAMS: '10' }, 'EVENT_LOG_MAX_STREAMS must be an integer from 100 to 100000000'],
    [{ EVENT_LOG_MAX_BYTES: '1048576', EVENT_MAX_PAYLOAD_BYTES: '2097152' }, 'EVENT_LOG_MAX_BYTES must be at least EVENT_MAX_PAYLOAD_BYTES'],
    [{ ALERTS_EVALUATE_SECONDS: '0' }, 'ALERTS_EVALUATE_SECONDS must be an integer from 1 to 3600'],
    [{ ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT: '50' }, 'ALERTS_WEBHOOK_FAILURE_WARNING_PERCENT must be below ALERTS_WEBHOOK_FAILURE_CRITICAL_PERCENT'],
    [{ OPERATOR_SCOPE: 'ops' }, 'OPERATOR_SCOPE must be app/env'],
    [{ JWT_SECRET: 'short' }, 'JWT_SECRET must be at least 32 bytes long'],
    [{ JWT_JWKS_URL: 'ftp://keys' }, 'JWT_JWKS_URL must be a URL starting with https:// or http://'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent'],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV must be development, test or production'],
    [{ SYNC_DURABILITY: 'eventually' }, 'SYNC_DURABILITY must be async or sync'],
    [{ WEBHOOK_ALLOW_PRIVATE_TARGETS: 'yes' }, 'WEBHOOK_ALLOW_PRIVATE_TARGETS must be true or false'],
    [{ WEBHOOK_TIMEOUT_MS: '50' }, 'WEBHOOK_TIMEOUT_MS must be an integer from 100 to 120000'],
    [{ CDC_SLOT_NAME: 'my_slot' }, 'CDC_SLOT_NAME is no longer supported: slots are named per source database now'],
    [{ CDC_PUBLICATION_NAME: 'my_pub' }, 'CDC_PUBLICATION_NAME is no longer supported: publications are named per source database now'],
    [{ WS_MAX_SUBSCRIPTIONS: '0' }, 'WS_MAX_SUBSCRIPTIONS must be an integer from 1 to 10000'],
    [{ WS_MAX_CONNECTIONS_PER_SUBJECT: '0' }, 'WS_MAX_CONNECTIONS_PER_SUBJECT must be an integer from 1 to 1000000'],
    [{ OUTBOX_POLL_INTERVAL_MS: '5' }, 'OUTBOX_POLL_INTERVAL_MS must be an integer from 10 to 600000'],
    [{ OUTBOX_REPORT_INTERVAL_MS: '50' }, 'OUTBOX_REPORT_INTERVAL_MS must be an integer from 100 to 5000'],
    [{ OUTBOX_REPORT_INTERVAL_MS: '60000' }, 'OUTBOX_REPORT_INTERVAL_MS must be an integer from 100 to 5000'],
    [{ DATA_DIR_LOCK_STALE_MS: '1000' }, 'DATA_DIR_LOCK_STALE_MS must be an integer from 2000 to 600000'],
    [{ WEBHOOK_HOUSEKEEPING_INTERVAL_MS: '50' }, 'WEBHOOK_HOUSEKEEPING_INTERVAL_MS must be an integer from 100 to 600000'],
    [{ WEBHOOK_RETRY_BASE_MS: '5' }, 'WEBHOOK_RETRY_BASE_MS must be an integer from 10 to 60000'],
    [{ WEBHOOK_LEASE_MARGIN_MS: '50' }, 'WEBHOOK_LEASE_MARGIN_MS must be an integer from 100 to 600000'],
    [{ WEBHOOK_RECONCILE_INTERVAL_MS: '50' }, 'WEBHOOK_RECONCILE_INTERVAL_MS must be an integer from 100 to 600000'],
    [{ ANALYTICS_FLUSH_SECONDS: '0' }, 'ANALYTICS_FLUSH_SECONDS must be an integer from 1 to 3600'],
    [{ ANALYTICS_ENABLED: 'off' }, 'ANALYTICS_ENABLED must be true or false'],
    [{ JWT_ISSUER: 'https://issuer.example/' }, 'JWT_ISSUER and JWT_AUDIENCE need JWT_SECRET or JWT_JWKS_URL'],
  ])('refuses %o with one line naming the variable', (env, expected) => {
    const message = configError(env);
    expect(message).toContain(expected);
    expect(message).not.toContain('\n');
  });

  it.each(['0x1F90', '8e3', '0b1111101000', '0o7640', '+8080', '-1', '8080.0', '1_000', 'Infinity'])(
    'reads integers in decimal digits only: refuses PORT=%s rather than reading it some other way',
    (port) => {
      expect(configError({ PORT: port })).toBe(`Invalid configuration: PORT must be an integer from 0 to 65535 (got "${port}")`);
    },
  );

  it('reads decimal integers as before, surrounding spaces and leading zeros included', () => {
    expect(loadConfig({ PORT: ' 8080 ' }).port).toBe(8080);
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ SHUTDOWN_TIMEOUT_MS: '02000' }).shutdownTimeoutMs).toBe(2000);
  });

  it.each(['127.0.0.1', '0.0.0.0', '::', '::1', 'fe80::1', 'localhost', 'api.internal', 'tributary-0.tributary.svc.cluster.local', 'host.example.'])(
    'takes HOST=%s, an IP address or a host name',
    (host) => {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    },
  );

  it.each(['127.0.0.1:4000', 'http://localhost', 'localhost/', '[::1]', '999.1.1.1', '10.0.0', 'my_host', '-leading.example', 'two words'])(
    'refuses HOST=%s at boot with a line naming HOST, not at listen() after the database was migrated',
    (host) => {
      expect(configError({ HOST: host })).toBe(`Invalid configuration: HOST must be an IP address or a host name, without a port, scheme or brackets (got "${host}")`);
    },
  );

  it('refuses to run in production without JWT verification', () => {
    expect(configError({ NODE_ENV: 'production' })).toContain('JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL must be set when NODE_ENV=production');
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', REDIS_URL: '  ', PORT: '' })).toMatchObject({
      databaseUrl: undefined,
      redisUrl: undefined,
      port: 4000,
    });
  });
});
