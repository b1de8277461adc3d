import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Umzug, type UmzugStorage } from 'umzug';
import type { Logger } from '../logger.ts';
import type { Database, Queryable } from './database.ts';

/** The project's migration folder: numbered, forward-only SQL files. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const FILE_NAME = /^\d{4}_[a-z0-9_]+\.sql$/;

/** Serializes migrations across instances that start at the same time (any fixed bigint). */
const MIGRATION_LOCK_KEY = 7_231_845_001;

export interface MigrateOptions {
  readonly logger: Logger;
  /** @default MIGRATIONS_DIR */
  readonly directory?: string;
}

export interface MigrateResult {
  /** Names of the migrations applied by this call, in order. */
  readonly applied: readonly string[];
}

/**
 * Applies pending migrations in one transaction under an advisory lock, so concurrent starts
 * neither race nor leave a half-applied set (Postgres DDL is transactional).
 */
export async function migrate(db: Database, options: MigrateOptions): Promise<MigrateResult> {
  const directory = options.directory ?? MIGRATIONS_DIR;
  const files = await listMigrationFiles(directory);
  const logger = options.logger.child({ component: 'migrations' });

  const applied = await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    const umzug = new Umzug<Queryable>({
      context: tx,
      storage: tableStorage,
      logger: undefined,
      migrations: files.map((file) => ({
        name: file,
        path: join(directory, file),
        up: async ({ context }) => context.exec(await readFile(join(directory, file), 'utf8')),
      })),
    });
    const done = await umzug.up();
    return done.map((migration) => migration.name);
  });

  if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  return { applied };
}

async function listMigrationFiles(directory: string): Promise<string[]> {
  const entries = await readdir(directory);
  const files = entries.filter((entry) => entry.endsWith('.sql')).sort();
  const misnamed = files.find((file) => !FILE_NAME.test(file));
  if (misnamed !== undefined) {
    throw new Error(`Migration file "${misnamed}" must be named NNNN_lower_snake_case.sql`);
  }
  return files;
}

/** Which migrations ran, kept in the database they changed. */
const tableStorage: UmzugStorage<Queryable> = {
  async executed({ context }) {
    await context.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         name text PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await context.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
    return rows.map((row) => row.name);
  },
  async logMigration({ name, context }) {
    await context.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
  },
  async unlogMigration({ name, context }) {
    await context.query('DELETE FROM schema_migrations WHERE name = $1', [name]);
  },
};
