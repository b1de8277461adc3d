import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { lockDataDir, type DataDirLockOptions } from './data-dir-lock.ts';
import type { Database, QueryResult, Row, Session } from './database.ts';

export interface EmbeddedDatabaseOptions {
  /** Folder that holds the database files; created when missing. `memory://` keeps it in memory. */
  readonly dataDir: string;
  /** How the data folder is locked against a second process. @default `lockDataDir`'s defaults */
  readonly lock?: DataDirLockOptions;
}

/**
 * The platform database embedded in this process (PGlite: Postgres compiled to WebAssembly),
 * file-backed so `npm start` needs no external server. One connection: statements are serialized.
 * One process per data folder (`data-dir-lock.ts`).
 * @throws TributaryError MISCONFIGURED when another process has the folder open.
 */
export async function createEmbeddedDatabase(options: EmbeddedDatabaseOptions): Promise<Database> {
  let unlock = () => Promise.resolve();
  if (!options.dataDir.startsWith('memory://')) {
    await mkdir(options.dataDir, { recursive: true });
    unlock = await lockDataDir(options.dataDir, options.lock);
  }
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(options.dataDir);
  } catch (error) {
    await unlock();
    throw error;
  }
  let closed: Promise<void> | undefined;

  // PGlite is one connection: the database and its one session are the same thing.
  const session: Session = {
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
  };

  return {
    kind: 'embedded',
    ...session,
    session: (work) => work(session),
    async ping() {
      await pglite.query('SELECT 1');
    },
    close() {
      closed ??= (async () => {
        if (!pglite.closed) await pglite.close();
        await unlock();
      })();
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
