import pg from 'pg';
import type { Logger } from '../../logger.ts';

/** A server that does not answer must not hold a poll or an admin call for minutes, in ms. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A batch's transaction waits at most this long between statements (routing takes milliseconds), in ms. */
const IDLE_IN_TRANSACTION_MS = 60_000;
/**
 * Longest a statement's answer is waited for, in ms. The poller's statements take milliseconds
 * (a retention batch, the status counts: well under a second); one the database never answers (a
 * network that drops packets, a host that froze) would otherwise hold its poll, and `stop()`, for
 * as long as the kernel keeps the socket (hours). The connection is then discarded.
 */
const QUERY_TIMEOUT_MS = 30_000;
/**
 * Longest a statement waits for a lock on the server, in ms. An outbox row locked by another session
 * (an operator's UPDATE left open in psql) would otherwise hold the poller's claim (FOR UPDATE), and
 * with it every partition that claim locked, and the WAL reader's catch-up, for as long as that
 * session lasts — the client's timeout gives up on the answer, not on the backend, which went on
 * waiting with the advisory locks of every partition. Failed fast, the claim rolls back, frees
 * them, and the poller claims the other partitions without the blocked one (`outbox-poller.ts`).
 */
const LOCK_TIMEOUT_MS = 5_000;
/**
 * Longest a statement runs on the server, in ms: at most the client's wait (`QUERY_TIMEOUT_MS`), so
 * a statement the client gave up on does not run on, holding its locks, behind its back.
 */
const STATEMENT_TIMEOUT_MS = 25_000;
/** Idle time before TCP keepalive probes start, in ms (Linux's default is two hours). */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/**
 * The limits of every connection the outbox's statements run on, each in ms as above: the pollers'
 * pools here, and the WAL reader's catch-up, clean-up and status reads (`cdc/cdc-service.ts`), which
 * would otherwise hold their database's chunks, or its housekeeping, behind a statement that never
 * answers.
 */
export interface OutboxConnectionLimits {
  readonly connectTimeoutMs: number;
  readonly idleInTransactionMs: number;
  readonly queryTimeoutMs: number;
  readonly keepAliveInitialDelayMs: number;
  /** Server-side, per transaction where the connections are not the outbox pool's (`outbox-sql.ts`, `limitWaits`). */
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

export const OUTBOX_CONNECTION_LIMITS: OutboxConnectionLimits = {
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  idleInTransactionMs: IDLE_IN_TRANSACTION_MS,
  queryTimeoutMs: QUERY_TIMEOUT_MS,
  keepAliveInitialDelayMs: KEEPALIVE_INITIAL_DELAY_MS,
  lockTimeoutMs: LOCK_TIMEOUT_MS,
  statementTimeoutMs: STATEMENT_TIMEOUT_MS,
};

export interface OutboxPoolOptions {
  /** Longest a statement's answer is waited for, in ms (and longest it runs on the server, up to 25000). @default 30000 */
  readonly queryTimeoutMs?: number;
  /** Longest a statement waits for a lock on the server, in ms. @default 5000 */
  readonly lockTimeoutMs?: number;
}

/**
 * A small pool on an application's database, for an outbox's pollers or a one-off admin check.
 * A lost connection (the database restarting) never crashes the process: an idle one's error is
 * logged, a checked-out one's statement rejects, and the next query reconnects.
 */
export function createOutboxPool(databaseUrl: string, logger: Logger, options: OutboxPoolOptions = {}): pg.Pool {
  const queryTimeoutMs = options.queryTimeoutMs ?? QUERY_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    // pg parses dates as ISO: whatever the server's or database's DateStyle (as source connections do).
    options: '-c DateStyle=ISO,MDY',
    max: 2,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    // A poller whose host vanishes mid-batch must not hold its partition's lock until the kernel gives up
    // on the socket (hours): the server ends its transaction, and keepalives notice the dead peer.
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    // Client-side: the statement rejects (the poller's transaction is given up and its connection
    // discarded, `outbox-poller.ts`), whether or not the server is still there to cancel it.
    query_timeout: queryTimeoutMs,
    // Server-side, sent at connect: a blocked or runaway statement ends on the server, its locks freed.
    lock_timeout: options.lockTimeoutMs ?? LOCK_TIMEOUT_MS,
    statement_timeout: Math.min(STATEMENT_TIMEOUT_MS, queryTimeoutMs),
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
  });
  pool.on('error', (error) => logger.warn({ err: error }, 'outbox database connection lost'));
  // pg-pool listens for a client's errors only while it is idle: one that dies checked out (between
  // statements) would crash the process without a listener of its own.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
