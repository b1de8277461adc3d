import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { Database, QueryResult, Row } from './database.ts';

export interface EmbeddedDatabaseOptions {
  /** Folder that holds the database files; created when missing. `memory://` keeps it in memory. */
  readonly dataDir: string;
}

/**
 * The platform database embedded in this process (PGlite: Postgres compiled to WebAssembly),
 * file-backed so `npm start` needs no external server. One connection: statements are serialized.
 */
export async function createEmbeddedDatabase(options: EmbeddedDatabaseOptions): Promise<Database> {
  if (!options.dataDir.startsWith('memory://')) await mkdir(options.dataDir, { recursive: true });
  const pglite = await PGlite.create(options.dataDir);
  let closed: Promise<void> | undefined;

  return {
    kind: 'embedded',
    query: (sql, params) => runQuery(pglite, sql, params),
    exec: async (sql) => {
      await pglite.exec(sql);
    },
    transaction: (work) =>
      pglite.transaction((tx) =>
        work({
          query: (sql, params) => runQuery(tx, sql, params),
          exec: async (sql) => {
            await tx.exec(sql);
          },
        }),
      ),
    async ping() {
      await pglite.query('SELECT 1');
    },
    close() {
      closed ??= pglite.closed ? Promise.resolve() : pglite.close();
      return closed;
    },
  };
}

async function runQuery<R extends Row>(
  client: PGlite | Transaction,
  sql: string,
  params: readonly unknown[] | undefined,
): Promise<QueryResult<R>> {
  const result = await client.query<R>(sql, params as unknown[] | undefined);
  return { rows: result.rows, rowCount: result.affectedRows ?? 0 };
}
