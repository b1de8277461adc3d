/**
 * The one small database interface the platform uses, over `pg` (a real Postgres) or PGlite
 * (embedded, file-backed). Both speak the same SQL; keep queries portable:
 * - cast `bigint`/`numeric` results you need as numbers (`count(*)::int`): `pg` returns int8 as text;
 * - `jsonb` arrives parsed, `timestamptz` as `Date`, on both drivers.
 */

export type Row = Record<string, unknown>;

export interface QueryResult<R extends Row = Row> {
  readonly rows: R[];
  /** Rows inserted, updated or deleted by the statement. */
  readonly rowCount: number;
}

export interface QueryOptions {
  /**
   * A statement run very often (per delivery, per batch): prepared once per connection under this
   * name, so Postgres skips parsing it — and, once its plan settles, planning it — afterwards. The
   * name must be unique to the text. Ignored by the embedded database (nothing to save there).
   */
  readonly prepareAs?: string;
}

export interface Queryable {
  /** One statement with `$1…$n` parameters. */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>>;
  /** Several statements without parameters (migrations, fixtures). */
  exec(sql: string): Promise<void>;
}

/**
 * One connection held for a piece of work: statements outside `transaction` commit one by one.
 * For what spans several transactions on one session (a session-level advisory lock) or must run
 * outside any (`CREATE INDEX CONCURRENTLY`). Session settings (`SET`) and locks outlive its
 * transactions: whoever sets them undoes them.
 */
export interface Session extends Queryable {
  /** Runs `work` in one transaction on this session's connection (as `Database.transaction`). */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
}

export interface Database extends Queryable {
  /** `postgres` over a connection pool, or `embedded` PGlite in this process. */
  readonly kind: 'postgres' | 'embedded';
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws.
   * Everything inside must use `tx`, not the database, or it runs outside the transaction.
   */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs `work` on one connection for as long as it takes (migrations): on Postgres a pooled one,
   * closed afterwards rather than handed back, so nothing it held or set outlives the session;
   * embedded, the one connection there is. Absent on a database that is one connection already
   * (a test's): that database is then its own session.
   */
  session?<T>(work: (session: Session) => Promise<T>): Promise<T>;
  /** Resolves when the database answers a trivial query; rejects otherwise. */
  ping(): Promise<void>;
  /** Idempotent. Waits for queries in flight. */
  close(): Promise<void>;
}
