import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { lockDataDir, type DataDirLockOptions } from './data-dir-lock.ts';
import type { Database, QueryResult, Row, Session } from './database.ts';

export interface EmbeddedDatabaseOptions {
  /** Folder that holds the database files; created when missing. `memory://` keeps it in memory. */
  readonly dataDir: string;
  /** How the data folder is locked against a second process. @default `lockDataDir`'s defaults */
  readonly lock?: DataDirLockOptions;
  /**
   * Called before PGlite creates a database in a folder that holds none (its initdb: 15–40 s,
   * silent), not for `memory://`; must not throw. @default nothing
   */
  readonly onCreate?: () => void;
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
    if (options.onCreate && !(await holdsDatabase(options.dataDir))) options.onCreate();
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

/** Whether `dataDir` holds a database already: initdb writes `PG_VERSION` into every data folder. */
async function holdsDatabase(dataDir: string): Promise<boolean> {
  try {
    await access(join(dataDir, 'PG_VERSION'));
    return true;
  } catch {
    return false;
  }
}
