/**
 * Services for integration tests, inside a test file.
 *
 * Teardown is registered at creation: every `create…`/`startPrivate…` helper registers its
 * `dispose()` with vitest's `onTestFinished`, so call them inside a test (or `beforeEach`).
 * `onTestFinished` callbacks run in reverse registration order, so a pool or client created
 * after its database is closed before the database is dropped — close what you open the same way.
 * For one instance per file, pass `{ autoDispose: false }` in `beforeAll` and return its dispose:
 *
 *   let db: TestDatabase;
 *   beforeAll(async () => {
 *     db = await createTestDatabase({ autoDispose: false });
 *     return db.dispose;
 *   });
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject, onTestFinished } from 'vitest';
import { startPostgres } from './postgres.ts';
import type { PostgresInstance, StartPostgresOptions } from './postgres.ts';
import { startRedis } from './redis.ts';
import type { RedisInstance, StartRedisOptions } from './redis.ts';
import { waitFor } from './wait-for.ts';

export interface TeardownOptions {
  /**
   * Register `dispose()` with `onTestFinished`. Set to false outside a test (e.g. `beforeAll`)
   * and dispose yourself.
   * @default true
   */
  autoDispose?: boolean;
}

export interface TestDatabase {
  /** Connection URL of the new database, same server and role as the shared cluster. */
  readonly url: string;
  /** `t_<random>`; a plain identifier, no quoting needed. */
  readonly name: string;
  /** Drops its replication slots, terminates its backends and drops it. Idempotent. */
  dispose(): Promise<void>;
}

/** `<prefix>_<12 random hex digits>`: a name no other test (or earlier run) uses. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** A Redis key prefix of its own for one test, e.g. `t_3f9a0c12be44:`. */
export function uniquePrefix(): string {
  return `${uniqueName()}:`;
}

/** URL of the run's shared Redis. Namespace keys and channels with `uniquePrefix()`. */
export function testRedisUrl(): string {
  return inject('redisUrl');
}

/** Admin URL of the run's shared Postgres cluster; for inspection only — write in `createTestDatabase()`. */
export function sharedPostgresUrl(): string {
  return inject('databaseUrl');
}

/** A fresh, empty database in the shared cluster (logical WAL on). */
export interface TestDatabaseOptions extends TeardownOptions {
  /** A copy of the run's migrated template: every migration already applied. @default false (empty) */
  readonly migrated?: boolean;
}

export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  return withTeardown('createTestDatabase', options, async () => {
    const adminUrl = sharedPostgresUrl();
    const name = uniqueName();
    const template = options.migrated === true ? ` TEMPLATE ${inject('migratedTemplate')}` : '';
    await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${name}${template}`));
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    let disposed: Promise<void> | undefined;
    return {
      url: url.toString(),
      name,
      dispose: () => (disposed ??= dropDatabase(adminUrl, name)),
    };
  });
}

/**
 * A pool on a test database, ended when the test finishes (before a database created earlier in
 * the test is dropped). Its connections' errors are ignored: `pool.end()` resolves before their
 * sockets have closed, and the database's drop then terminates their backends (57P01) — a pool
 * without an 'error' listener throws that as an uncaught exception, failing the run after every
 * test passed. A test that breaks connections on purpose gets the same: the query in progress
 * rejects, and the next one reconnects.
 */
export function openTestPool(url: string, options: Omit<pg.PoolConfig, 'connectionString'> = {}): pg.Pool {
  const pool = new pg.Pool({ max: 2, ...options, connectionString: url });
  // A database dropped at teardown ends its sessions (57P01): an idle client's error reaches the
  // pool, a checked-out one's (a test holding a transaction open) its client — neither may go unhandled.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  onTestFinished(() => pool.end());
  return pool;
}

/** A Postgres cluster of the test's own, for tests that stop or restart the server. */
export function startPrivatePostgres(options: StartPostgresOptions & TeardownOptions = {}): Promise<PostgresInstance> {
  return withTeardown('startPrivatePostgres', options, () => startPostgres(options));
}

/** A Redis server of the test's own, for tests that stop or restart the server. */
export function startPrivateRedis(options: StartRedisOptions & TeardownOptions = {}): Promise<RedisInstance> {
  return withTeardown('startPrivateRedis', options, () => startRedis(options));
}

async function withTeardown<T extends { dispose(): Promise<void> }>(
  helper: string,
  options: TeardownOptions,
  create: () => Promise<T>,
): Promise<T> {
  if (options.autoDispose === false) return create();
  const created: { instance?: T } = {};
  // Registered before creating, so a call outside a test fails before it starts anything.
  try {
    onTestFinished(async () => {
      await created.instance?.dispose();
    });
  } catch (error) {
    throw new Error(
      `${helper}() registers its teardown with onTestFinished, so it must run inside a test or beforeEach. ` +
        `In beforeAll, call ${helper}({ autoDispose: false }) and return the result's dispose.`,
      { cause: error },
    );
  }
  created.instance = await create();
  return created.instance;
}

/** A client of its own on `url`, ended when the test ends; an error on it (a dropped database, a cut link) is left to the query in progress. */
export async function openTestClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  onTestFinished(() => client.end());
  return client;
}

/** Runs `use` on a connection of its own to `url`, closed after. */
export async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/** SQLSTATE 55006: DROP DATABASE while a replication slot of the database is active. */
const OBJECT_IN_USE = '55006';

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) return;
    // No new connection from here on: a server still running (its teardown comes later) cannot
    // create its slot again between the slots' drop and the database's.
    await client.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    // DROP DATABASE refuses while a replication slot belongs to the database, and an active slot
    // cannot be dropped: end the database's sessions — its walsenders, and the replication
    // connections that could start one or create their slot again (they were opened before
    // connections were refused) — then drop the slots once Postgres marks them inactive. A
    // session that slipped a slot in between makes the drop fail (object in use): all again.
    await waitFor(
      async () => {
        await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        const { rows } = await client.query<{ slot_name: string; active_pid: number | null }>(
          'SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1',
          [name],
        );
        for (const slot of rows) {
          if (slot.active_pid === null) await client.query('SELECT pg_drop_replication_slot($1)', [slot.slot_name]);
          else await client.query('SELECT pg_terminate_backend($1)', [slot.active_pid]);
        }
        if (rows.length > 0) return false;
        try {
          // FORCE terminates the database's remaining backends (Postgres 13+).
          await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          return true;
        } catch (error) {
          if (error instanceof pg.DatabaseError && error.code === OBJECT_IN_USE) return false;
          throw error;
        }
      },
      { timeoutMs: 10_000, message: `could not drop database ${name} and its replication slots` },
    );
  });
}
