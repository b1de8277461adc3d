import pg from 'pg';
import type { Logger } from '../logger.ts';
import { unavailableIfDisconnected } from './connection-failure.ts';
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
}

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
  const config: PoolConfigWithHook = {
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'tributary',
    // No JIT compilation: Tributary's statements are short, but some (a claim of due webhook
    // deliveries: a LIMIT over a filtered index scan) are estimated far above jit_above_cost, and
    // compiling them took ~25 ms of a ~2 ms statement, every time. Set before the pool hands the
    // connection out (a startup parameter would be refused by some connection poolers).
    onConnect: async (client) => {
      // A connection that dies while checked out (a transaction between statements; the server
      // restarted or the backend terminated) emits 'error', which pg-pool only listens for while
      // the client is idle: without a listener of its own it would crash the process. The
      // statement in progress, or the next one, rejects instead, and the transaction reports it.
      client.on('error', () => {});
      await client.query('SET jit = off').catch((error: unknown) => options.logger.warn({ err: error }, 'could not turn JIT off for a database connection'));
      // Timestamps read as text — node-postgres's parsers, a webhook delivery's lease matched
      // exactly when it is recorded — are ISO: under a server default of another DateStyle they
      // would come in a form they are not read back from (SQL style prints IST for India, read as Israel).
      await client.query('SET DateStyle = ISO').catch((error: unknown) => options.logger.warn({ err: error }, 'could not set DateStyle ISO for a database connection'));
    },
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
      const client = await pool.connect().catch(rethrow);
      const session: Session = {
        query: (sql, params, queryOptions) => runQuery(client, sql, params, queryOptions),
        exec: (sql) => runExec(client, sql),
        transaction: (inner) => inTransaction(client, inner, () => undefined),
      };
      try {
        return await work(session);
      } finally {
        // Closed, not handed back: a session-level lock or setting left on it would go on to
        // whoever takes it next.
        client.release(true);
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

async function runQuery<R extends Row>(
  client: pg.Pool | pg.PoolClient,
  sql: string,
  params: readonly unknown[] | undefined,
  options: QueryOptions | undefined,
): Promise<QueryResult<R>> {
  const values = params as unknown[] | undefined;
  const result = await (options?.prepareAs === undefined ? client.query<R>(sql, values) : client.query<R>({ name: options.prepareAs, text: sql, values })).catch(rethrow);
  return { rows: result.rows, rowCount: result.rowCount ?? 0 };
}

async function runExec(client: pg.Pool | pg.PoolClient, sql: string): Promise<void> {
  await client.query(sql).catch(rethrow);
}

/**
 * `work` in one transaction on `client`: committed when it resolves, rolled back when it throws.
 * `onBroken` hears of a connection that failed its ROLLBACK (unusable: the server went away).
 */
async function inTransaction<T>(client: pg.PoolClient, work: (tx: Queryable) => Promise<T>, onBroken: (error: Error) => void): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await work({
      query: (sql, params, queryOptions) => runQuery(client, sql, params, queryOptions),
      exec: (sql) => runExec(client, sql),
    });
    await client.query('COMMIT');
    return result;
  } catch (error) {
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

