import { resolve } from 'node:path';
import type { Config } from '../config.ts';
import { componentLogger, type Logger } from '../logger.ts';
import { databaseConnectFailure } from './connection-failure.ts';
import type { Database } from './database.ts';
import { createEmbeddedDatabase } from './embedded.ts';
import { createPostgresDatabase } from './postgres.ts';

export interface OpenDatabaseOptions {
  /**
   * Called if the embedded database's DATA_DIR lock is lost while it is open (`data-dir-lock.ts`).
   * @default `exitOnLostDataDir`: log at fatal level and exit 1 at once
   */
  readonly onDataDirLost?: (error: Error) => void;
}

/**
 * The platform database the configuration names: Postgres at DATABASE_URL, else embedded PGlite in
 * DATA_DIR.
 * @throws TributaryError when DATABASE_URL cannot be connected to (`databaseConnectFailure`: where
 *   it tried and what to check); MISCONFIGURED when another process has DATA_DIR.
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'> & Partial<Pick<Config, 'dataDirLockStaleMs'>>,
  logger: Logger,
  options: OpenDatabaseOptions = {},
): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    const db = createPostgresDatabase({ url: config.databaseUrl, logger: componentLogger(logger, 'db') });
    // Connected once here, so that a wrong URL is told as such, not as the requests' "retry shortly".
    try {
      await db.ping();
    } catch (error) {
      await db.close().catch(() => undefined);
      throw databaseConnectFailure(config.databaseUrl, error);
    }
    return db;
  }
  return createEmbeddedDatabase({
    dataDir: config.dataDir,
    lock: {
      ...(config.dataDirLockStaleMs !== undefined && { staleMs: config.dataDirLockStaleMs }),
      onLost: options.onDataDirLost ?? exitOnLostDataDir(logger, config.dataDir),
      // Else a second `npm start` on the folder says nothing until it gives up, seconds later.
      onWait: (waitMs) =>
        logger.info(
          { dataDir: config.dataDir },
          `DATA_DIR is locked by another process; waiting up to ${Math.round(waitMs / 1000)} s for it (a crashed holder's lock is taken over, a live one's is not)`,
        ),
    },
    // PGlite's initdb takes 15–40 s and prints nothing: a first start would look hung.
    onCreate: () => logger.info({ dataDir: config.dataDir }, `creating the embedded database in ${resolve(config.dataDir)} (first start; takes a while)`),
  });
}

/**
 * What a process does when it loses its DATA_DIR lock (the server and `npm run migrate` alike): the
 * folder may be another process's now, and whatever this one writes next would overwrite that
 * one's files. It stops at once, without a graceful shutdown (which would write: a last flush,
 * PGlite's close), and says why.
 */
function exitOnLostDataDir(logger: Logger, dataDir: string): (error: Error) => void {
  return (error) => {
    logger.fatal(
      { err: error, dataDir },
      'the DATA_DIR lock was lost: another process has the folder, or it was removed; stopping so as not to write over it',
    );
    logger.flush();
    process.exit(1);
  };
}
