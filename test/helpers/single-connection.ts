/**
 * One pg client as the engine's `Database`: every statement — named ones prepared on it, as the
 * pool prepares them — and every transaction run on that connection. For tests that read what one
 * connection does (its plans, its session settings), which a pool would spread over several.
 */
import pg from 'pg';
import type { Database, Queryable, QueryOptions, Row } from '../../src/db/database.ts';

export function databaseOn(client: pg.Client): Database {
  const connection: Queryable = {
    async query<R extends Row>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
      const result = await client.query<R>({ text: sql, values: params === undefined ? [] : [...params], ...(options?.prepareAs !== undefined && { name: options.prepareAs }) });
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    },
    async exec(sql) {
      await client.query(sql);
    },
  };
  return {
    ...connection,
    kind: 'postgres',
    async transaction(work) {
      await client.query('BEGIN');
      try {
        const result = await work(connection);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    },
    ping: async () => void (await client.query('SELECT 1')),
    // The test ends its client itself.
    close: () => Promise.resolve(),
  };
}

/** A connection of its own to `url` whose every plan, nested statements' included, is pushed onto `plans` as it runs (auto_explain). */
export async function explainingClient(url: string, plans: string[]): Promise<pg.Client> {
  const explaining = new pg.Client({ connectionString: url });
  explaining.on('notice', (notice) => plans.push(notice.message ?? ''));
  await explaining.connect();
  await explaining.query(`LOAD 'auto_explain'`);
  await explaining.query('SET auto_explain.log_min_duration = 0');
  await explaining.query('SET auto_explain.log_nested_statements = on');
  await explaining.query('SET client_min_messages = log');
  return explaining;
}
