import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Database } from './database.ts';
import { createEmbeddedDatabase } from './embedded.ts';
import { createPostgresDatabase } from './postgres.ts';

/** The platform database the configuration names: Postgres at DATABASE_URL, else embedded PGlite in DATA_DIR. */
export async function openDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    return createPostgresDatabase({ url: config.databaseUrl, logger: logger.child({ component: 'db' }) });
  }
  return createEmbeddedDatabase({ dataDir: config.dataDir });
}
