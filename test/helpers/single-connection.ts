/**
 * One pg client as the engine's `Database`: every statement — named ones prepared on it, as the
 * pool prepares them — and every transaction run on that connection. For tests that read what one
 * connection does (its plans, its session settings), which a pool would spread over several.
 */
import type pg from 'pg';
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
