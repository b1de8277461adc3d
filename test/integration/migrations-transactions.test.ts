/**
 * Migrations during a rolling upgrade: each migration is a transaction of its own (its locks go at
 * its commit, not at the last pending one's), waits `lock_timeout` at most for a table lock and is
 * tried again, and several processes migrating at once still apply each migration exactly once.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { parseMigration } from '../../src/db/migration-files.ts';
import { migrate, MigrationError } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

/** A migration folder of the test's own holding `files` (name → SQL). */
async function migrationFolder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-migrations-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

async function postgres(): Promise<{ db: Database; url: string }> {
  const { url } = await createTestDatabase();
  const db = createPostgresDatabase({ url, logger });
  onTestFinished(() => db.close());
  return { db, url };
}

const drivers: Record<string, () => Promise<Database>> = {
  embedded: async () => {
    // A copy of the run's initialised PGlite folder, no migration applied (an empty folder would
    // cost PGlite's initdb, ~7 s a test): the tests apply migration folders of their own.
    const dir = await pgliteDataDir();
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const db = await createEmbeddedDatabase({ dataDir: dir });
    onTestFinished(() => db.close());
    return db;
  },
  postgres: async () => (await postgres()).db,
};

async function appliedNames(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
  return rows.map((row) => row.name);
}

/** The backend of `pool` that waits for a lock while running a statement that starts with `statement`. */
async function waitingOnLock(pool: pg.Pool, statement: string): Promise<boolean> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND datname = current_database()`,
    [`${statement}%`],
  );
  return (rows[0]?.n ?? 0) > 0;
}

describe.each(Object.keys(drivers))('%s migrations', (driver) => {
  const open = drivers[driver]!;

  it('keeps the migrations before a failed one applied, and applies the failed one alone once it is mended', async () => {
    const db = await open();
    const dir = await migrationFolder({
      '0001_first.sql': 'CREATE TABLE first (x int);',
      '0002_broken.sql': 'CREATE TABLE second (x int); SELECT * FROM missing_table;',
    });
    const failed = migrate(db, { logger, directory: dir });
    await expect(failed).rejects.toThrow(/Migration 0002_broken\.sql \(up\) failed: Original error: relation "missing_table" does not exist/);
    await expect(failed).rejects.toBeInstanceOf(MigrationError);
    const { rows } = await db.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_name IN ('first', 'second', 'schema_migrations') ORDER BY 1",
    );
    expect(rows.map((row) => row.table_name)).toEqual(['first', 'schema_migrations']);
    expect(await appliedNames(db)).toEqual(['0001_first.sql']);

    await writeFile(join(dir, '0002_broken.sql'), 'CREATE TABLE second (x int);');
    expect((await migrate(db, { logger, directory: dir })).applied).toEqual(['0002_broken.sql']);
  });

  it('records a migration in its own transaction: one whose record cannot be written is rolled back whole', async () => {
    const db = await open();
    const dir = await migrationFolder({
      '0001_first.sql': 'CREATE TABLE first (x int);',
      // Applies fine, then refuses its own record: a record written after the commit would leave the
      // table (and the constraint) behind, applied yet pending.
      '0002_unrecordable.sql': "CREATE TABLE second (x int); ALTER TABLE schema_migrations ADD CONSTRAINT not_0002 CHECK (name <> '0002_unrecordable.sql');",
    });
    await expect(migrate(db, { logger, directory: dir })).rejects.toThrow(/Migration 0002_unrecordable\.sql \(up\) failed: .*not_0002/);
    const { rows } = await db.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_name IN ('first', 'second') ORDER BY 1");
    expect(rows.map((row) => row.table_name)).toEqual(['first']);
    const constraints = await db.query("SELECT 1 FROM pg_constraint WHERE conname = 'not_0002'");
    expect(constraints.rows).toEqual([]);
    expect(await appliedNames(db)).toEqual(['0001_first.sql']);
  });

  it('runs a migration marked no-transaction statement by statement (CREATE INDEX CONCURRENTLY) and records it once it succeeded', async () => {
    const db = await open();
    const dir = await migrationFolder({
      '0001_items.sql': 'CREATE TABLE items (id int PRIMARY KEY, code text); INSERT INTO items SELECT g, g::text FROM generate_series(1, 100) g;',
      '0002_items_code.sql': [
        '-- tributary:no-transaction',
        '-- A concurrent build; dropped first, so a run after a failed build does not keep its INVALID index.',
        'DROP INDEX CONCURRENTLY IF EXISTS items_code;',
        "CREATE UNIQUE INDEX CONCURRENTLY items_code ON items (code) WHERE code <> ';';",
      ].join('\n'),
    });
    expect((await migrate(db, { logger, directory: dir })).applied).toEqual(['0001_items.sql', '0002_items_code.sql']);
    const { rows } = await db.query<{ valid: boolean }>("SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'items_code'");
    expect(rows).toEqual([{ valid: true }]);
    expect(await appliedNames(db)).toEqual(['0001_items.sql', '0002_items_code.sql']);
    expect((await migrate(db, { logger, directory: dir })).applied).toEqual([]);
  });

  it('leaves a no-transaction migration whose build failed pending, and builds it again at the next run', async () => {
    const db = await open();
    const dir = await migrationFolder({
      '0001_items.sql': "CREATE TABLE items (id int PRIMARY KEY, code text); INSERT INTO items VALUES (1, 'a'), (2, 'a');",
      '0002_items_code.sql': '-- tributary:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_code;\nCREATE UNIQUE INDEX CONCURRENTLY items_code ON items (code);\n',
    });
    await expect(migrate(db, { logger, directory: dir })).rejects.toThrow(/Migration 0002_items_code\.sql \(up\) failed: Original error: could not create unique index "items_code"/);
    // The failed concurrent build left its index, INVALID; the migration is not recorded.
    const validity = async () => (await db.query<{ valid: boolean }>("SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'items_code'")).rows;
    expect(await validity()).toEqual([{ valid: false }]);
    expect(await appliedNames(db)).toEqual(['0001_items.sql']);

    await db.query("UPDATE items SET code = 'b' WHERE id = 2");
    expect((await migrate(db, { logger, directory: dir })).applied).toEqual(['0002_items_code.sql']);
    expect(await validity()).toEqual([{ valid: true }]);
  });

  it('does not record a no-transaction migration that leaves an INVALID index behind (IF NOT EXISTS kept a failed build)', async () => {
    const db = await open();
    const dir = await migrationFolder({
      '0001_items.sql': "CREATE TABLE items (id int PRIMARY KEY, code text); INSERT INTO items VALUES (1, 'a'), (2, 'a');",
      '0002_items_code.sql': '-- tributary:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_code ON items (code);\n',
    });
    await expect(migrate(db, { logger, directory: dir })).rejects.toThrow(/could not create unique index "items_code"/);
    await db.query("UPDATE items SET code = 'b' WHERE id = 2");
    await expect(migrate(db, { logger, directory: dir })).rejects.toThrow(
      'Migration 0002_items_code.sql (up) failed: Original error: INVALID indexes remain (items_code), left by a failed concurrent build',
    );
    expect(await appliedNames(db)).toEqual(['0001_items.sql']);
  });
});

describe('a migration marked no-transaction', () => {
  it('is cut into its statements at each semicolon that ends a line', () => {
    const file = parseMigration('0002_items_code.sql', [
      '-- tributary:no-transaction',
      '-- The drop first: a run after a failed build must not keep its INVALID index.',
      'DROP INDEX CONCURRENTLY IF EXISTS items_code;',
      "CREATE INDEX CONCURRENTLY items_code ON items (code) WHERE code <> ';';  ",
      '',
      '-- nothing after this',
      '',
    ].join('\n'));
    expect(file).toEqual({
      name: '0002_items_code.sql',
      transaction: false,
      statements: [
        '-- tributary:no-transaction\n-- The drop first: a run after a failed build must not keep its INVALID index.\nDROP INDEX CONCURRENTLY IF EXISTS items_code',
        "CREATE INDEX CONCURRENTLY items_code ON items (code) WHERE code <> ';'",
      ],
    });
  });

  it('is refused, before anything is applied, when it holds a dollar quote its cutting would break', async () => {
    const { db } = await postgres();
    const dir = await migrationFolder({
      '0001_items.sql': 'CREATE TABLE items (id int PRIMARY KEY, code text);',
      '0002_items_fn.sql': [
        '-- tributary:no-transaction',
        'CREATE FUNCTION items_touch() RETURNS trigger AS $body$',
        'BEGIN',
        '  NEW.code := lower(NEW.code);',
        '  RETURN NEW;',
        'END;',
        '$body$ LANGUAGE plpgsql;',
      ].join('\n'),
    });
    await expect(migrate(db, { logger, directory: dir })).rejects.toThrow(
      'Migration file "0002_items_fn.sql" is marked no-transaction but holds a dollar quote ($body$)',
    );
    await expect(migrate(db, { logger, directory: await migrationFolder({ '0001_x.sql': '-- tributary:no-transaction\nDO $$ BEGIN END $$;\n' }) })).rejects.toThrow(
      'holds a dollar quote ($$)',
    );
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('items', 'schema_migrations')");
    expect(rows).toEqual([{ n: 0 }]);
  });
});

describe('postgres migrations beside a running previous version', () => {
  const tables = { '0001_tables.sql': 'CREATE TABLE t (x int); CREATE TABLE other (x int); INSERT INTO t VALUES (1);' };

  it("lets go of a migration's locks at its commit: a read of the table an earlier one altered goes on while a later one waits", async () => {
    const { db, url } = await postgres();
    await migrate(db, { logger, directory: await migrationFolder(tables) });
    const dir = await migrationFolder({
      ...tables,
      '0002_alter_t.sql': 'ALTER TABLE t ADD COLUMN y int;',
      '0003_alter_other.sql': 'ALTER TABLE other ADD COLUMN y int;',
    });
    // A previous-version transaction reading `other`: 0003 waits for it (longer than any lock_timeout here).
    const pool = openTestPool(url, { max: 3 });
    const holder = await pool.connect();
    onTestFinished(() => holder.release());
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM other');
    const migrating = migrate(db, { logger, directory: dir, lockTimeoutMs: 60_000 });
    await waitFor(() => waitingOnLock(pool, 'ALTER TABLE other'), { message: 'migration 0003 never waited for the lock on other' });

    // 0002 committed (and its ACCESS EXCLUSIVE lock on t went) before 0003 began: a reader of t
    // does not wait at all, which its own lock_timeout would turn into an error.
    const reader = await pool.connect();
    onTestFinished(() => reader.release());
    await reader.query("SET lock_timeout = '5s'");
    expect((await reader.query<{ x: number; y: number | null }>('SELECT x, y FROM t')).rows).toEqual([{ x: 1, y: null }]);

    await holder.query('COMMIT');
    expect((await migrating).applied).toEqual(['0002_alter_t.sql', '0003_alter_other.sql']);
  });

  it('gives way, after lock_timeout, to the reads queued behind a migration that waits for its lock, and tries the migration again', async () => {
    const { db, url } = await postgres();
    await migrate(db, { logger, directory: await migrationFolder(tables) });
    const dir = await migrationFolder({ ...tables, '0002_alter_t.sql': 'ALTER TABLE t ADD COLUMN y int;' });
    const pool = openTestPool(url, { max: 3 });
    const holder = await pool.connect();
    onTestFinished(() => holder.release());
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM t');

    const logs = captureLogs();
    const retried = deferred<void>();
    const sink = {
      write(line: string) {
        logs.write(line);
        if (line.includes('trying again')) retried.resolve();
      },
    };
    const migrating = migrate(db, { logger: createLogger({ level: 'info', destination: sink }), directory: dir, lockTimeoutMs: 200, lockAttempts: 1000, lockRetryDelayMs: 20 });
    await waitFor(() => waitingOnLock(pool, 'ALTER TABLE t'), { message: 'the migration never waited for the lock on t' });
    // Queued behind the waiting ALTER (its ACCESS EXCLUSIVE request), this read waits for the
    // ALTER's lock_timeout — not for the previous version's transaction, still open.
    const reader = await pool.connect();
    onTestFinished(() => reader.release());
    await reader.query("SET lock_timeout = '20s'");
    expect((await reader.query<{ x: number }>('SELECT x FROM t')).rows).toEqual([{ x: 1 }]);
    await retried.promise;
    expect(logs.lines.find((line) => line.msg.includes('trying again'))).toMatchObject({ level: 40, migration: '0002_alter_t.sql', attempt: 1, lockTimeoutMs: 200 });

    await holder.query('COMMIT');
    expect((await migrating).applied).toEqual(['0002_alter_t.sql']);
  });

  it('fails the migration, unrecorded, once it met its lock timeout on every try', async () => {
    const { db, url } = await postgres();
    await migrate(db, { logger, directory: await migrationFolder(tables) });
    const dir = await migrationFolder({ ...tables, '0002_alter_t.sql': 'ALTER TABLE t ADD COLUMN y int;' });
    const holder = await openTestPool(url).connect();
    onTestFinished(() => holder.release());
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM t');

    const logs = captureLogs();
    await expect(migrate(db, { logger: createLogger({ level: 'info', destination: logs }), directory: dir, lockTimeoutMs: 100, lockAttempts: 3, lockRetryDelayMs: 10 })).rejects.toThrow(
      'Migration 0002_alter_t.sql (up) failed: Original error: canceling statement due to lock timeout',
    );
    expect(logs.lines.filter((line) => line.msg.includes('trying again')).map((line) => line.attempt)).toEqual([1, 2]);
    await holder.query('COMMIT');
    expect(await appliedNames(db)).toEqual(['0001_tables.sql']);
  });

  it('applies each migration exactly once when several processes migrate at once, one outside a transaction among them', async () => {
    const { url } = await createTestDatabase();
    const dir = await migrationFolder({
      '0001_items.sql': 'CREATE TABLE items (id int PRIMARY KEY, code text); INSERT INTO items SELECT g, g::text FROM generate_series(1, 5000) g;',
      '0002_items_code.sql': '-- tributary:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_code;\nCREATE INDEX CONCURRENTLY items_code ON items (code);\n',
      // Not idempotent: a second run would fail (column exists).
      '0003_items_note.sql': 'ALTER TABLE items ADD COLUMN note text;',
      '0004_items_note_index.sql': '-- tributary:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_note;\nCREATE INDEX CONCURRENTLY items_note ON items (note);\n',
    });
    const instances = Array.from({ length: 4 }, () => createPostgresDatabase({ url, logger }));
    onTestFinished(() => Promise.all(instances.map((db) => db.close())).then(() => undefined));

    const results = await Promise.all(instances.map((db) => migrate(db, { logger, directory: dir })));
    expect(results.flatMap((result) => result.applied).sort()).toEqual(['0001_items.sql', '0002_items_code.sql', '0003_items_note.sql', '0004_items_note_index.sql']);
    const [first] = instances;
    expect(await appliedNames(first!)).toEqual(['0001_items.sql', '0002_items_code.sql', '0003_items_note.sql', '0004_items_note_index.sql']);
    const { rows } = await first!.query<{ name: string; valid: boolean }>(
      "SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname IN ('items_code', 'items_note') ORDER BY 1",
    );
    expect(rows).toEqual([{ name: 'items_code', valid: true }, { name: 'items_note', valid: true }]);
  });
});
