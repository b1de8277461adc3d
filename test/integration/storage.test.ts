import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { MAIN_SCRIPT, startMainProcess } from '../helpers/main-process.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

/**
 * A data folder removed after the test: a copy of the run's initialised PGlite folder (PGlite's
 * initdb costs ~7 s a start), of its `migrated` one (a server started on it applies nothing: the
 * tests of a running server's lock), or `empty` for a first start's own (or a folder of files).
 */
async function tempDir(kind: 'initialised' | 'migrated' | 'empty' = 'initialised'): Promise<string> {
  const dir = kind === 'empty' ? await mkdtemp(join(tmpdir(), 'tributary-storage-')) : await pgliteDataDir({ migrated: kind === 'migrated' });
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Opens a database with no migration applied, or with every one applied in the run's template (`migrated`: by `migrate`, on the same driver). */
const drivers: Record<string, (migrated?: 'migrated') => Promise<Database>> = {
  embedded: async (migrated) => {
    const db = await createEmbeddedDatabase({ dataDir: await tempDir(migrated ?? 'initialised') });
    onTestFinished(() => db.close());
    return db;
  },
  postgres: async (migrated) => {
    const { url } = await createTestDatabase({ migrated: migrated !== undefined });
    const db = createPostgresDatabase({ url, logger });
    onTestFinished(() => db.close());
    return db;
  },
};

describe.each(Object.keys(drivers))('%s storage', (driver) => {
  const open = drivers[driver]!;

  it('applies the whole migration set once, and nothing the second time', async () => {
    const db = await open();
    const files = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql')).sort();
    expect(files.length).toBeGreaterThan(0);

    expect((await migrate(db, { logger })).applied).toEqual(files);
    expect((await migrate(db, { logger })).applied).toEqual([]);
    const { rows } = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
    expect(rows.map((row) => row.name)).toEqual(files);
  });

  it('creates the same tables and columns on both drivers', async () => {
    // The run's template, migrated on this driver (the test above applies the set itself).
    const db = await open('migrated');
    expect((await migrate(db, { logger })).applied).toEqual([]);
    const { rows } = await db.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'sync_documents' ORDER BY ordinal_position`,
    );
    expect(rows).toEqual([
      { column_name: 'app', data_type: 'text' },
      { column_name: 'env', data_type: 'text' },
      { column_name: 'tenant', data_type: 'text' },
      { column_name: 'service', data_type: 'text' },
      { column_name: 'id', data_type: 'text' },
      { column_name: 'revision', data_type: 'integer' },
      { column_name: 'data', data_type: 'jsonb' },
      { column_name: 'deleted', data_type: 'boolean' },
      { column_name: 'created_at', data_type: 'timestamp with time zone' },
      { column_name: 'updated_at', data_type: 'timestamp with time zone' },
      { column_name: 'ceiling', data_type: 'integer' },
      { column_name: 'cache_epoch', data_type: 'text' },
    ]);
  });

  it('binds parameters, round-trips jsonb and reports affected rows', async () => {
    const db = await open();
    await db.exec('CREATE TABLE t (id int PRIMARY KEY, body jsonb NOT NULL); CREATE TABLE u (x int)');
    const inserted = await db.query('INSERT INTO t (id, body) VALUES ($1, $2), ($3, $4)', [1, { a: [1, 'two'] }, 2, { b: null }]);
    expect(inserted.rowCount).toBe(2);
    const { rows } = await db.query<{ id: number; body: unknown }>('SELECT id, body FROM t WHERE id = $1', [1]);
    expect(rows).toEqual([{ id: 1, body: { a: [1, 'two'] } }]);
    const updated = await db.query('UPDATE t SET body = $1', [{ c: true }]);
    expect(updated.rowCount).toBe(2);
  });

  it('commits a transaction that resolves and rolls back one that throws', async () => {
    const db = await open();
    await db.exec('CREATE TABLE t (id int PRIMARY KEY)');
    expect(await db.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES (1)');
      return 'done';
    })).toBe('done');

    const failure = new Error('abort');
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO t VALUES (2)');
        throw failure;
      }),
    ).rejects.toBe(failure);
    // A failed statement inside also rolls back, and the database stays usable afterwards.
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO t VALUES (3)');
        await tx.query('INSERT INTO t VALUES (1)');
      }),
    ).rejects.toMatchObject({ code: '23505' });

    const { rows } = await db.query<{ id: number }>('SELECT id FROM t ORDER BY id');
    expect(rows).toEqual([{ id: 1 }]);
  });

  it('answers ping and closes idempotently', async () => {
    const db = await open();
    await expect(db.ping()).resolves.toBeUndefined();
    await db.close();
    await db.close();
    await expect(db.ping()).rejects.toThrow();
  });

  it('refuses a migration file that is not named NNNN_lower_snake_case.sql', async () => {
    const db = await open();
    const dir = await tempDir('empty');
    await writeFile(join(dir, '0001_ok.sql'), 'CREATE TABLE ok (x int);');
    await writeFile(join(dir, 'second.sql'), 'CREATE TABLE bad (x int);');
    await expect(migrate(db, { logger, directory: dir })).rejects.toThrow('Migration file "second.sql" must be named NNNN_lower_snake_case.sql');
  });

  // A migration that fails midway (what stays applied, what is rolled back): migrations-transactions.test.ts.
});

describe('embedded storage', () => {
  it('keeps its data in DATA_DIR across a restart', async () => {
    // From an empty folder: the first start of `npm start` on a new machine.
    const dataDir = await tempDir('empty');
    const first = await createEmbeddedDatabase({ dataDir });
    await migrate(first, { logger });
    await first.query(`INSERT INTO sync_documents (app, env, service, id, revision, data) VALUES ('a', 'e', 's', 'd1', 1, $1)`, [{ v: 1 }]);
    await first.close();

    const second = await createEmbeddedDatabase({ dataDir });
    onTestFinished(() => second.close());
    expect((await migrate(second, { logger })).applied).toEqual([]);
    const { rows } = await second.query('SELECT id, data FROM sync_documents');
    expect(rows).toEqual([{ id: 'd1', data: { v: 1 } }]);
  });
});

describe('embedded storage: one process per data folder', () => {
  it('refuses to open a DATA_DIR another holder has open, and opens it once that one has closed', async () => {
    const dataDir = await tempDir();
    const first = await createEmbeddedDatabase({ dataDir });
    await expect(createEmbeddedDatabase({ dataDir, lock: { waitMs: 0 } })).rejects.toMatchObject({
      code: 'MISCONFIGURED',
      message: expect.stringContaining('is in use by another Tributary process') as unknown,
    });
    await first.close();
    const second = await createEmbeddedDatabase({ dataDir, lock: { waitMs: 0 } });
    onTestFinished(() => second.close());
    expect((await second.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('takes over the lock a crashed process left behind once it is stale', async () => {
    const dataDir = await tempDir();
    const lock = join(dataDir, 'tributary.lock');
    await mkdir(lock);
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(lock, minuteAgo, minuteAgo);
    const db = await createEmbeddedDatabase({ dataDir, lock: { waitMs: 0 } });
    onTestFinished(() => db.close());
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it("waits 10 s before it takes a holder's lock for a dead one's (a live holder's event loop may stall that long)", async () => {
    const dataDir = await tempDir();
    const lock = join(dataDir, 'tributary.lock');
    await mkdir(lock);
    // Not refreshed for 6 s: a live holder in a long synchronous stretch (PGlite runs on the main thread).
    const sixSecondsAgo = new Date(Date.now() - 6_000);
    await utimes(lock, sixSecondsAgo, sixSecondsAgo);
    await expect(createEmbeddedDatabase({ dataDir, lock: { waitMs: 0 } })).rejects.toMatchObject({ code: 'MISCONFIGURED' });
  });

  it.each([
    ['its lock folder is removed (rm -rf)', (dataDir: string) => rm(join(dataDir, 'tributary.lock'), { recursive: true, force: true })],
    ['another process takes its lock over', takeLockOver],
  ])('stops a running server at once with exit code 1, saying why, when %s', { timeout: 60_000 }, async (_, takeAway) => {
    const dataDir = await tempDir('migrated');
    const running = await startMainProcess({ DATA_DIR: dataDir });
    // Every log line has been read once its standard output is closed.
    const closed = once(running.child, 'close');
    await takeAway(dataDir);
    expect(await running.exited).toEqual({ code: 1, signal: null });
    await closed;
    expect(running.logs.filter((entry) => Number(entry['level']) >= 50)).toEqual([
      expect.objectContaining({
        level: 60,
        msg: 'the DATA_DIR lock was lost: another process has the folder, or it was removed; stopping so as not to write over it',
        dataDir,
      }),
    ]);
    // No graceful shutdown: nothing more was done in the folder.
    expect(running.logs.map((entry) => entry['msg'])).not.toContain('shutting down');
  });

  it('stops a second server on the same DATA_DIR at start, saying why, while the first goes on', { timeout: 60_000 }, async () => {
    const dataDir = await tempDir('migrated');
    const first = await startMainProcess({ DATA_DIR: dataDir });
    // The second waits for the lock a little over its stale time (4 s here, 10 s by default) before it gives up.
    const second = spawn(process.execPath, [MAIN_SCRIPT], {
      env: { PATH: process.env['PATH'] ?? '', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, DATA_DIR_LOCK_STALE_MS: '4000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    second.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    second.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(second, 'exit')) as [number | null];
    expect(code).not.toBe(0);
    // It said why it waited before it did (not seconds of silence), then why it stopped.
    expect(stdout).toContain('DATA_DIR is locked by another process; waiting up to 7 s for it');
    expect(stderr).toContain(`DATA_DIR ${dataDir} is in use by another Tributary process`);
    const health = await fetch(`http://127.0.0.1:${first.port}/health`);
    expect(health.status).toBe(200);
  });
});

/**
 * What another process does to a lock it judges stale (its holder's refresh is late by over the
 * stale time): removes it and takes it, with proper-lockfile as `lockDataDir` does. Held until the
 * test ends.
 */
async function takeLockOver(dataDir: string): Promise<void> {
  const lockfilePath = join(dataDir, 'tributary.lock');
  for (;;) {
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(lockfilePath, longAgo, longAgo);
    try {
      // The holder's refresh can straddle our take-over too (its stat before, its utimes after): it
      // then keeps the folder and ours is compromised — take it over again, as a real taker would.
      const release = await lockfile.lock(dataDir, { lockfilePath, stale: 10_000, onCompromised: () => void takeLockOver(dataDir).catch(() => undefined) });
      // A compromised lock is released already: nothing to give back.
      onTestFinished(() => release().catch(() => undefined));
      return;
    } catch (error) {
      // The holder's refresh (a stat, then a utimes) straddled ours and made the lock fresh again.
      if ((error as { code?: unknown }).code !== 'ELOCKED') throw error;
    }
  }
}

describe('postgres storage', () => {
  it('applies migrations exactly once when several instances start at the same time', async () => {
    const { url } = await createTestDatabase();
    const instances = Array.from({ length: 4 }, () => createPostgresDatabase({ url, logger }));
    onTestFinished(() => Promise.all(instances.map((db) => db.close())).then(() => undefined));

    const results = await Promise.all(instances.map((db) => migrate(db, { logger })));
    const applied = results.flatMap((result) => result.applied);
    const files = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql')).sort();
    expect(applied.sort()).toEqual(files);
  });

  it('runs every connection without JIT compilation (a short statement was compiling for ~25 ms)', async () => {
    const { url } = await createTestDatabase();
    const db = createPostgresDatabase({ url, logger, maxConnections: 3 });
    onTestFinished(() => db.close());
    // Three at once: three connections, each set before its first statement.
    const settings = await Promise.all([1, 2, 3].map(() => db.query<{ jit: string }>('SELECT current_setting($1) AS jit, pg_sleep(0.05)', ['jit'])));
    expect(settings.map(({ rows }) => rows[0]?.jit)).toEqual(['off', 'off', 'off']);
  });

  it('reads timestamps as ISO whatever DateStyle the database defaults to', async () => {
    const { url } = await createTestDatabase();
    await openTestPool(url).query(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET DateStyle = %L', current_database(), 'SQL, DMY'); END $$`);
    const db = createPostgresDatabase({ url, logger, maxConnections: 1 });
    onTestFinished(() => db.close());
    const { rows } = await db.query<{ style: string; at: Date }>(`SELECT current_setting('DateStyle') AS style, timestamptz '2026-12-03 10:00:00.123456+00' AS at`);
    expect(rows[0]?.style).toMatch(/^ISO/);
    expect(rows[0]?.at.toISOString()).toBe('2026-12-03T10:00:00.123Z');
  });
});

/**
 * Terminates the backend behind `query`'s connection and returns once its last message (57P01) has
 * been read — while no statement runs on that connection. Once Postgres no longer lists the backend
 * that message is on the socket, and it is read within this turn of the event loop.
 */
async function terminateBetweenStatements(url: string, query: (sql: string) => Promise<{ rows: { pid: number }[] }>): Promise<void> {
  const admin = openTestPool(url, { max: 1 });
  const pid = (await query('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  await waitFor(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0, { message: 'the backend exited' });
  await new Promise((resolve) => setImmediate(resolve));
}

// A checked-out connection's error is emitted with no statement to reject when it dies between
// statements; pg-pool listens for errors only while a connection is idle, and without a listener of
// the pool's own the process crashed (vitest reports it as an unhandled error).
describe('a Postgres connection terminated between statements', () => {
  it('the platform database: the transaction rejects UNAVAILABLE, and the next statement gets a new connection', async () => {
    const { url } = await createTestDatabase();
    const db = createPostgresDatabase({ url, logger, maxConnections: 1 });
    onTestFinished(() => db.close());
    const transaction = db.transaction(async (tx) => {
      await terminateBetweenStatements(url, (sql) => tx.query<{ pid: number }>(sql));
      await tx.query('SELECT 1');
    });
    await expect(transaction).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('an outbox pool: the next statement on that connection rejects, and the pool goes on', async () => {
    const { url } = await createTestDatabase();
    const pool = createOutboxPool(url, logger);
    onTestFinished(() => pool.end());
    const client = await pool.connect();
    await terminateBetweenStatements(url, (sql) => client.query<{ pid: number }>(sql));
    await expect(client.query('SELECT 1')).rejects.toThrow();
    client.release(true);
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});
