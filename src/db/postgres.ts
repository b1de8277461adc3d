import pg from 'pg';
import type { Logger } from '../logger.ts';
import { isQueryTimeout, unavailableIfDisconnected } from './connection-failure.ts';
import type { Database, Queryable, QueryOptions, QueryResult, Row, Session } from './database.ts';

export interface PostgresDatabaseOptions {
  /** `postgres://user:password@host:port/database`. */
  readonly url: string;
  readonly logger: Logger;
  /** Pool size. @default 10 */
  readonly maxConnections?: number;
  /** Time to wait for a pooled connection, in ms. @default 10000 */
  readonly connectionTimeoutMs?: number;
  /** `application_name` seen in `pg_stat_activity`. @default 'tributary' */
  readonly applicationName?: string;
  /**
   * Longest a statement's answer is waited for, in ms; not applied to a `session` (migrations,
   * `CREATE INDEX CONCURRENTLY`, waiting for another instance's migration lock). @default 30000
   */
  readonly queryTimeoutMs?: number;
}

/**
 * The platform's statements take milliseconds (the longest, a count of a large webhook backlog or a
 * pruning batch, seconds). One the database never answers — a failover moved it to another host, a
 * NAT or firewall dropped the flow, the host froze — would otherwise hold its caller, and the pooled
 * connection, until the kernel gives up on the socket (~15 min): a few of them (a `/ready` probe
 * takes one each) and every other caller waits out the connect timeout for a connection instead.
 * The statement rejects with UNAVAILABLE and its connection leaves the pool. The same limits as an
 * outbox's pool (`pipeline/outbox/outbox-pool.ts`).
 */
const QUERY_TIMEOUT_MS = 30_000;
/** Idle time before TCP keepalive probes start, in ms (Linux's default is two hours): a dead peer is noticed. */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/** pg-pool waits for `onConnect`'s promise before handing a new connection out (@types/pg says void). */
type PoolConfigWithHook = pg.PoolConfig & { readonly onConnect: (client: pg.ClientBase) => Promise<void> };

/**
 * The platform database on a real Postgres, through a `pg` pool. Every operation that fails
 * because the server cannot take it now (unreachable: refused, reset, timed out, shutting down,
 * starting up; read-only after a failover; out of disk, memory or I/O — `isDatabaseOutage`)
 * rejects with a TributaryError UNAVAILABLE whose cause is the driver's error, so callers and
 * clients see "retry" rather than an internal error.
 */
export function createPostgresDatabase(options: PostgresDatabaseOptions): Database {
  const connection: pg.ClientConfig = {
    connectionString: options.url,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'tributary',
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
  };
  const config: PoolConfigWithHook = {
    ...connection,
    max: options.maxConnections ?? 10,
    // Client-side, so it ends a statement whether or not the server is still there to cancel it.
    // `pool.query` discards a client whose statement failed; transactions do (`inTransaction`).
    query_timeout: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
    onConnect: (client) => prepareConnection(client, options.logger),
  };
  const pool = new pg.Pool(config);
  // An idle client losing its connection (Postgres restarted) emits on the pool; without a
  // listener that would crash the process. The pool replaces the client on next use.
  pool.on('error', (error) => options.logger.warn({ err: error }, 'idle database connection lost'));

  let closed: Promise<void> | undefined;

  return {
    kind: 'postgres',
    query: (sql, params, queryOptions) => runQuery(pool, sql, params, queryOptions),
    exec: (sql) => runExec(pool, sql),
    async transaction(work) {
      const client = await pool.connect().catch(rethrow);
      let broken: Error | undefined;
      try {
        return await inTransaction(client, work, (error) => (broken = error));
      } finally {
        // A connection that could not even roll back (the server went away) leaves the pool.
        client.release(broken ?? false);
      }
    },
    async session(work) {
      // A connection of its own, outside the pool and without the statements' time limit: a
      // session runs migrations, which may build an index for minutes or wait for another
      // instance's migration lock. TCP keepalive still notices a dead peer.
      const client = new pg.Client(connection);
      await client.connect().catch(rethrow);
      const session: Session = {
        query: (sql, params, queryOptions) => runQuery(client, sql, params, queryOptions),
        exec: (sql) => runExec(client, sql),
        transaction: (inner) => inTransaction(client, inner, () => undefined),
      };
      try {
        await prepareConnection(client, options.logger);
        return await work(session);
      } finally {
        // Closed, never pooled: a session-level lock or setting left on it dies with it.
        await client.end().catch(() => undefined);
      }
    },
    async ping() {
      await runExec(pool, 'SELECT 1');
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}

/**
 * Settings every connection gets before its first statement. No JIT compilation: Tributary's
 * statements are short, but some (a claim of due webhook deliveries: a LIMIT over a filtered index
 * scan) are estimated far above jit_above_cost, and compiling them took ~25 ms of a ~2 ms
 * statement, every time. Set on the connection (a startup parameter would be refused by some
 * connection poolers).
 */
async function prepareConnection(client: pg.ClientBase, logger: Logger): Promise<void> {
  // A connection that dies while checked out (a transaction between statements; the server
  // restarted or the backend terminated) emits 'error', which pg-pool only listens for while
  // the client is idle: without a listener of its own it would crash the process. The
  // statement in progress, or the next one, rejects instead, and the transaction reports it.
  client.on('error', () => {});
  await client.query('SET jit = off').catch((error: unknown) => logger.warn({ err: error }, 'could not turn JIT off for a database connection'));
  // Timestamps read as text — node-postgres's parsers, a webhook delivery's lease matched
  // exactly when it is recorded — are ISO: under a server default of another DateStyle they
  // would come in a form they are not read back from (SQL style prints IST for India, read as Israel).
  await client.query('SET DateStyle = ISO').catch((error: unknown) => logger.warn({ err: error }, 'could not set DateStyle ISO for a database connection'));
}

async function runQuery<R extends Row>(
  client: pg.Pool | pg.ClientBase,
  sql: string,
  params: readonly unknown[] | undefined,
  options: QueryOptions | undefined,
): Promise<QueryResult<R>> {
  const values = params as unknown[] | undefined;
  const result = await (options?.prepareAs === undefined ? client.query<R>(sql, values) : client.query<R>({ name: options.prepareAs, text: sql, values })).catch(rethrow);
  return { rows: result.rows, rowCount: result.rowCount ?? 0 };
}

async function runExec(client: pg.Pool | pg.ClientBase, sql: string): Promise<void> {
  await client.query(sql).catch(rethrow);
}

/**
 * `work` in one transaction on `client`: committed when it resolves, rolled back when it throws.
 * `onBroken` hears of a connection that is unusable: a statement timed out, or its ROLLBACK failed
 * (the server went away).
 */
async function inTransaction<T>(client: pg.ClientBase, work: (tx: Queryable) => Promise<T>, onBroken: (error: Error) => void): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await work({
      query: (sql, params, queryOptions) => runQuery(client, sql, params, queryOptions),
      exec: (sql) => runExec(client, sql),
    });
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A statement that timed out is still the connection's statement in progress: a ROLLBACK
    // would queue behind it and time out in its turn. The connection is given up instead (the
    // server rolls back when it notices, or with the failed-over host's restart).
    if (isQueryTimeout(error)) {
      onBroken(error);
      throw unavailableIfDisconnected(error);
    }
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      onBroken(rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError)));
    }
    throw unavailableIfDisconnected(error);
  }
}

function rethrow(error: unknown): never {
  throw unavailableIfDisconnected(error);
}

