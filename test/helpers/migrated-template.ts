/**
 * A database of the run's shared Postgres with every migration applied, made once per run in the
 * global setup and copied by `createTestDatabase({ migrated: true })` (CREATE DATABASE … TEMPLATE):
 * a test server then finds its platform database up to date instead of migrating a fresh one
 * (~150–300 ms of the server's start, hundreds of times a run). Tests of the migrations
 * themselves start from an empty database, as before.
 */
import { randomBytes } from 'node:crypto';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { withClient } from './services.ts';

/** Creates and migrates the template in the cluster of `adminUrl`; resolves with its name and its drop. */
export async function createMigratedTemplate(adminUrl: string): Promise<{ readonly name: string; dispose(): Promise<void> }> {
  const name = `template_${randomBytes(6).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const logger = createLogger({ level: 'silent' });
  const db = createPostgresDatabase({ url: url.toString(), logger });
  try {
    await migrate(db, { logger });
  } finally {
    await db.close();
  }
  // A template may not be connected to while it is copied: nobody but CREATE DATABASE reads it.
  await withClient(adminUrl, (client) => client.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`));
  return {
    name,
    dispose: () =>
      withClient(adminUrl, async (client) => {
        await client.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE false`);
        await client.query(`DROP DATABASE IF EXISTS ${name}`);
      }),
  };
}
