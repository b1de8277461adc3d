/**
 * Applies the migrations of `migrations/` a process finds pending, at start (`clients.ts`) and
 * with `npm run migrate`, on Postgres and on the embedded database alike. umzug orders and runs
 * them; what it cannot know (the lock, the transactions, the retries) is in each migration's `up`.
 *
 * Each migration is its own transaction, with `lock_timeout` set: during a rolling upgrade the
 * previous version's instances go on serving, and a migration's locks (an `ALTER TABLE`'s ACCESS
 * EXCLUSIVE, a plain `CREATE INDEX`'s SHARE) are held until it commits — not until the last
 * pending migration does — and are waited for a few seconds at most. A lock request that waits
 * queues every later request on its table behind it, reads included; so a migration that cannot
 * have its lock gives up (SQLSTATE 55P03), is rolled back, and is tried again a moment later, a
 * bounded number of times, rather than stalling the previous version's traffic behind a long
 * transaction.
 *
 * One process at a time migrates: the runner holds a session-level advisory lock (the key the
 * previous versions took per transaction, so they are kept out too) for its whole run on one
 * connection, reads what is applied once it has it, and records each migration in
 * `schema_migrations` in the migration's own transaction. Others wait for the lock by polling
 * `pg_try_advisory_lock` rather than queueing on it: a waiter queued inside a statement holds a
 * snapshot, which `CREATE INDEX CONCURRENTLY` under the lock would wait for — a deadlock.
 *
 * Rules for a migration that must run outside a transaction (an index built on a large table
 * without blocking its writers). Its first line is `-- tributary:no-transaction`; then:
 * - each statement ends with `;` at the end of a line (the file is cut there, with no SQL parser),
 *   and the file holds no function, DO block, dollar quote (refused) or string over several lines.
 * - its statements run one by one, each committed on its own, and it is recorded as applied only
 *   once the last one succeeded: a failure (or a crash) part-way leaves it pending, and it runs
 *   again from its first statement at the next start. Every statement must be safe to run again:
 *   `IF NOT EXISTS`, `IF EXISTS`.
 * - a `CREATE INDEX CONCURRENTLY` that fails (a lock timeout, a duplicate for a unique index, a
 *   cancelled build) leaves its index behind, INVALID, and `IF NOT EXISTS` would then keep the
 *   invalid one. So build an index as two statements, the drop first:
 *       DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_x;
 *       CREATE INDEX CONCURRENTLY webhook_deliveries_x ON webhook_deliveries (…);
 *   The runner checks the schema for INVALID indexes after such a migration and does not record
 *   it while there is one (the start fails, naming them).
 * - one index (or one statement) per file: everything it completed is done again after a failure.
 * - nothing else: DDL that a transaction can hold belongs in an ordinary migration.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Umzug, type UmzugStorage } from 'umzug';
import { SqlState, sqlStateOf } from '../errors.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { Database, Queryable, Session } from './database.ts';
import { readMigrationFiles, type MigrationFile } from './migration-files.ts';

/** umzug's error for a migration that failed: `migration.name`, and the database's error as `cause`. */
export { MigrationError } from 'umzug';

/** The project's migration folder: numbered, forward-only SQL files. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Serializes migrations across instances that start at the same time (any fixed bigint). */
const MIGRATION_LOCK_KEY = 7_231_845_001;

/** How often a process waiting for another's migrations asks for the lock again, in ms. */
const LOCK_POLL_MS = 100;

export interface MigrateOptions {
  readonly logger: Logger;
  /** @default MIGRATIONS_DIR */
  readonly directory?: string;
  /** `lock_timeout` of every migration statement, in ms: the longest others queue behind one. @default 5000 */
  readonly lockTimeoutMs?: number;
  /** Tries of a migration that keeps meeting its lock timeout before the migration fails. @default 5 */
  readonly lockAttempts?: number;
  /** Wait before trying such a migration again, in ms, times the tries so far. @default 1000 */
  readonly lockRetryDelayMs?: number;
}

export interface MigrateResult {
  /** Names of the migrations applied by this call, in order. */
  readonly applied: readonly string[];
}

interface LockRetry {
  readonly lockTimeoutMs: number;
  readonly attempts: number;
  readonly delayMs: number;
}

/** Applies the pending migrations; rejects with umzug's `MigrationError` naming the one that failed. */
export async function migrate(db: Database, options: MigrateOptions): Promise<MigrateResult> {
  const files = await readMigrationFiles(options.directory ?? MIGRATIONS_DIR);
  const logger = componentLogger(options.logger, 'migrations');
  const retry: LockRetry = {
    lockTimeoutMs: options.lockTimeoutMs ?? 5000,
    attempts: options.lockAttempts ?? 5,
    delayMs: options.lockRetryDelayMs ?? 1000,
  };

  const run = async (session: Session): Promise<MigrateResult> => {
    await acquireLock(session, logger);
    try {
      const umzug = new Umzug<Session>({
        context: session,
        storage: tableStorage,
        logger: {
          info: (message) => logger.debug(message, 'umzug'),
          warn: (message) => logger.warn(message, 'umzug'),
          error: (message) => logger.error(message, 'umzug'),
          debug: (message) => logger.debug(message, 'umzug'),
        },
        migrations: files.map((file) => ({
          name: file.name,
          up: ({ context }) => withLockRetries(file.name, retry, logger, () => apply(context, file, retry.lockTimeoutMs)),
        })),
      });
      // umzug reads what is applied (tableStorage.executed) here, under the lock.
      const done = await umzug.up();
      return { applied: done.map((migration) => migration.name) };
    } finally {
      // On Postgres the session's connection is closed next, which lets go of the lock anyway.
      await session
        .query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
        .catch((error: unknown) => logger.warn({ err: error }, 'could not release the migration lock'));
    }
  };
  const result = db.session ? await db.session(run) : await run(db);

  if (result.applied.length > 0) logger.info({ applied: result.applied }, 'migrations applied');
  return result;
}

/**
 * Which migrations ran, kept in the database they changed. A migration records itself (`apply`),
 * in its own transaction: umzug's `logMigration` would come after that commit, and a crash between
 * the two would leave it applied yet pending — to be run again over its own effects.
 */
const tableStorage: UmzugStorage<Session> = {
  async executed({ context }) {
    await context.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
       name text PRIMARY KEY,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`);
    const { rows } = await context.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
    return rows.map((row) => row.name);
  },
  logMigration: () => Promise.resolve(),
  async unlogMigration({ name, context }) {
    // Never called: migrations are forward only (none has a `down`).
    await context.query('DELETE FROM schema_migrations WHERE name = $1', [name]);
  },
};

/** Takes the migration lock for `session`, waiting (without holding a snapshot) while another process has it. */
async function acquireLock(session: Queryable, logger: Logger): Promise<void> {
  let told = false;
  for (;;) {
    const { rows } = await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY]);
    if (rows[0]?.locked === true) return;
    if (!told) logger.info('another process is migrating the database; waiting for it');
    told = true;
    await sleep(LOCK_POLL_MS);
  }
}

/** Runs one migration and records it: in one transaction, or statement by statement and recorded last. */
async function apply(session: Session, file: MigrationFile, lockTimeoutMs: number): Promise<void> {
  if (file.transaction) {
    await session.transaction(async (tx) => {
      await tx.exec(`SET LOCAL lock_timeout = ${Math.floor(lockTimeoutMs)}`);
      await tx.exec(file.sql);
      await record(tx, file.name);
    });
    return;
  }
  await session.exec(`SET lock_timeout = ${Math.floor(lockTimeoutMs)}`);
  try {
    for (const statement of file.statements) await session.exec(statement);
  } finally {
    await session.exec('RESET lock_timeout');
  }
  const invalid = await invalidIndexes(session);
  if (invalid.length > 0) {
    throw new Error(
      `INVALID indexes remain (${invalid.join(', ')}), left by a failed concurrent build: drop each with DROP INDEX CONCURRENTLY IF EXISTS before building it (see migrations.ts)`,
    );
  }
  await record(session, file.name);
}

async function record(db: Queryable, name: string): Promise<void> {
  await db.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
}

/**
 * Runs `attempt` until it does not fail for a lock timeout, at most `retry.attempts` times; any
 * other failure ends it at once. Inside the migration's `up`, so umzug sees one failure, the last.
 */
async function withLockRetries(name: string, retry: LockRetry, logger: Logger, attempt: () => Promise<void>): Promise<void> {
  for (let tries = 1; ; tries += 1) {
    try {
      await attempt();
      return;
    } catch (error) {
      if (sqlStateOf(error) !== SqlState.LOCK_NOT_AVAILABLE || tries >= retry.attempts) throw error;
      logger.warn(
        { migration: name, attempt: tries, of: retry.attempts, lockTimeoutMs: retry.lockTimeoutMs, err: error },
        'migration waited its lock_timeout for a table lock another transaction holds; rolled back, trying again',
      );
      await sleep(retry.delayMs * tries);
    }
  }
}

/** Indexes of this schema a failed `CREATE INDEX CONCURRENTLY` left INVALID. */
async function invalidIndexes(session: Queryable): Promise<string[]> {
  const { rows } = await session.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i
       JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND n.nspname = current_schema()
      ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}
