/**
 * What a server asks of Postgres, counted by Postgres itself (`pg_stat_statements`, preloaded on
 * the workload's private server): statements per database since a reset, each normalized
 * statement with its calls and time. Every statement is a round trip from the server, so calls per
 * unit of work (a delivery, a commit) is a cost that carries over from this noisy machine to any
 * other; `BEGIN` and `COMMIT` count too (`pg_stat_statements.track_utility`, on by default).
 */
import pg from 'pg';

export interface StatementCount {
  /** Normalized text (`$1`… for constants), whitespace collapsed. */
  readonly query: string;
  readonly calls: number;
  /** Mean execution time inside Postgres, in ms. */
  readonly meanMs: number;
}

export interface StatementStats {
  /** Forgets what was counted for `database`. */
  reset(database: string): Promise<void>;
  /** What `database` ran since its reset, most calls first. */
  read(database: string): Promise<StatementCount[]>;
  close(): Promise<void>;
}

/** Needs `shared_preload_libraries = 'pg_stat_statements'` on the server at `url` (a superuser URL). */
export async function createStatementStats(url: string): Promise<StatementStats> {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-statement-stats' });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  } catch (error) {
    await client.end();
    throw error;
  }
  return {
    async reset(database) {
      await client.query('SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = $1), 0)', [database]);
    },
    async read(database) {
      const { rows } = await client.query<{ query: string; calls: string; mean: number }>(
        `SELECT s.query, sum(s.calls)::text AS calls, (sum(s.total_exec_time) / greatest(sum(s.calls), 1))::float8 AS mean
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = $1
          GROUP BY s.query ORDER BY sum(s.calls) DESC`,
        [database],
      );
      return rows.map((row) => ({ query: row.query.replace(/\s+/g, ' ').trim(), calls: Number(row.calls), meanMs: row.mean }));
    },
    close: () => client.end(),
  };
}
