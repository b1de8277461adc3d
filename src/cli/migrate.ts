/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL, or to the embedded database in
 * DATA_DIR when it is unset, and prints what it applied.
 */
import { ConfigError, loadConfig } from '../config.ts';
import { migrate } from '../db/migrations.ts';
import { openDatabase } from '../db/open.ts';
import { createLogger } from '../logger.ts';
import { describeFailure } from '../start/failure.ts';

async function run(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const db = await openDatabase(config, logger);
  try {
    const { applied } = await migrate(db, { logger });
    const target = config.databaseUrl === undefined ? `embedded database in ${config.dataDir}` : 'DATABASE_URL';
    console.log(applied.length === 0 ? `${target}: up to date` : `${target}: applied ${applied.join(', ')}`);
    return 0;
  } finally {
    await db.close();
  }
}

run().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`Migration failed: ${describeFailure(error, { stack: false })}`);
    process.exit(1);
  },
);
