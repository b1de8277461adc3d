import pg from 'pg';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  createTestDatabase,
  pingRedis,
  sharedPostgresUrl,
  startPrivatePostgres,
  startPrivateRedis,
  testRedisUrl,
  uniquePrefix,
} from '../helpers/index.ts';

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  onTestFinished(() => client.end());
  return client;
}

function redisClient(url: string): Redis {
  // No retries: a stopped server must surface as an error, not as a command queued forever.
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  onTestFinished(() => client.disconnect());
  return client;
}

describe('test harness', () => {
  it('runs the shared Postgres with logical WAL, so CDC tests can create slots', async () => {
    const client = await connect(sharedPostgresUrl());
    const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
    expect(rows[0]?.wal_level).toBe('logical');
  });

  it('creates test databases that can be written and do not see each other', async () => {
    const [first, second] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    expect(first.name).not.toBe(second.name);
    const a = await connect(first.url);
    const b = await connect(second.url);

    await a.query('CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)');
    await a.query("INSERT INTO items VALUES (1, 'one')");
    const { rows } = await a.query<{ label: string }>('SELECT label FROM items WHERE id = 1');
    expect(rows).toEqual([{ label: 'one' }]);

    const { rows: seen } = await b.query<{ exists: boolean }>("SELECT to_regclass('items') IS NOT NULL AS exists");
    expect(seen).toEqual([{ exists: false }]);
    const { rows: current } = await b.query<{ db: string }>('SELECT current_database() AS db');
    expect(current[0]?.db).toBe(second.name);
  });

  it('drops a test database even when it holds a logical replication slot', async () => {
    const db = await createTestDatabase({ autoDispose: false });
    try {
      const client = await connect(db.url);
      await client.query("SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')");
      await client.end();
    } finally {
      await db.dispose();
    }
    const admin = await connect(sharedPostgresUrl());
    const { rows } = await admin.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_database WHERE datname = $1',
      [db.name],
    );
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('shares one Redis between tests, namespaced by a unique prefix', async () => {
    const prefix = uniquePrefix();
    expect(prefix).not.toBe(uniquePrefix());
    const redis = redisClient(testRedisUrl());
    await redis.connect();
    await redis.set(`${prefix}key`, 'value');
    expect(await redis.get(`${prefix}key`)).toBe('value');
  });

  it('stops and restarts a private Redis on the same port', async () => {
    const server = await startPrivateRedis();
    const first = redisClient(server.url);
    await first.connect();
    expect(await first.ping()).toBe('PONG');
    first.disconnect();

    await server.stop();
    expect(await pingRedis(server.port)).toBe(false);
    const refused = redisClient(server.url);
    const connectError = new Promise<Error>((resolve) => refused.once('error', resolve));
    await expect(refused.connect()).rejects.toThrow();
    expect((await connectError).message).toMatch(/ECONNREFUSED/);

    await server.start();
    const again = redisClient(server.url);
    await again.connect();
    expect(await again.ping()).toBe('PONG');
  });

  it('stops and restarts a private Postgres on the same port with its data kept', async () => {
    const server = await startPrivatePostgres();
    const before = new pg.Client({ connectionString: server.url });
    await before.connect();
    await before.query('CREATE TABLE kept (id int PRIMARY KEY)');
    await before.query('INSERT INTO kept VALUES (42)');
    await before.end();

    await server.stop();
    await expect(connect(server.url)).rejects.toThrow(/ECONNREFUSED/);

    await server.start();
    const after = await connect(server.url);
    expect(server.url).toContain(`:${server.port}/`);
    const { rows } = await after.query<{ id: number }>('SELECT id FROM kept');
    expect(rows).toEqual([{ id: 42 }]);
  });
});
