/**
 * Shutdown with a Redis that stopped answering (its connections open, nothing coming back): the
 * steps that need Redis are cut at their share of SHUTDOWN_TIMEOUT_MS, and the last one still
 * closes the platform database — its close does not wait behind Redis's QUIT, which is never answered.
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { createTestDatabase, sharedPostgresUrl, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

it('closes the platform database on dispose when Redis is silent', async () => {
  const db = await createTestDatabase();
  const redisUrl = new URL(testRedisUrl());
  const proxy = await startTcpProxy(Number(redisUrl.port));
  redisUrl.hostname = '127.0.0.1';
  redisUrl.port = String(proxy.port);
  const server = await startTestServer(
    { DATABASE_URL: db.url, REDIS_URL: redisUrl.toString(), REDIS_KEY_PREFIX: uniquePrefix(), SHUTDOWN_TIMEOUT_MS: '2000' },
    { autoDispose: false },
  );
  const admin = new pg.Client({ connectionString: sharedPostgresUrl() });
  await admin.connect();
  const connectionsOfServer = async () => {
    const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tributary'", [db.name]);
    return rows[0]?.n ?? 0;
  };
  try {
    expect(await connectionsOfServer()).toBeGreaterThan(0);

    proxy.blackhole(true);
    await server.dispose();

    // The pool's close ends its connections; the server notices each one's end a moment later.
    await waitFor(async () => (await connectionsOfServer()) === 0, { message: 'the platform database is closed' });
  } finally {
    proxy.dropAll();
    await admin.end();
  }
});
