import pg from 'pg';
import type { Logger } from '../../logger.ts';

/** A server that does not answer must not hold a poll or an admin call for minutes, in ms. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A batch's transaction waits at most this long between statements (routing takes milliseconds), in ms. */
const IDLE_IN_TRANSACTION_MS = 60_000;

/**
 * A small pool on an application's database, for an outbox's pollers or a one-off admin check.
 * A lost connection (the database restarting) never crashes the process: an idle one's error is
 * logged, a checked-out one's statement rejects, and the next query reconnects.
 */
export function createOutboxPool(databaseUrl: string, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 2,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    // A poller whose host vanishes mid-batch must not hold its partition's lock until the kernel gives up
    // on the socket (hours): the server ends its transaction, and keepalives notice the dead peer.
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    keepAlive: true,
  });
  pool.on('error', (error) => logger.warn({ err: error }, 'outbox database connection lost'));
  // pg-pool listens for a client's errors only while it is idle: one that dies checked out (between
  // statements) would crash the process without a listener of its own.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
