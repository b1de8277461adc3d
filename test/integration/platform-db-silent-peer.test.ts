/**
 * The platform database stops answering on the connections the pool holds — a failover to another
 * host, a NAT or firewall that dropped the flow, a frozen host — while new connections would work.
 * A statement on such a connection must end (UNAVAILABLE: retry) instead of waiting for the kernel
 * to give up on the socket (~15 min), and the connection must leave the pool so that the next
 * statement gets a working one. Long statements of their own kind (migrations) are not cut.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import type { Database } from '../../src/db/database.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const logger = createLogger({ level: 'silent' });

/** A platform database of one connection, through a proxy that can silence it. */
async function silenceableDatabase(queryTimeoutMs: number): Promise<{ db: Database; proxy: TcpProxy }> {
  const target = await createTestDatabase();
  const url = new URL(target.url);
  const proxy = await startTcpProxy(Number(url.port));
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  const db = createPostgresDatabase({ url: url.toString(), logger, maxConnections: 1, queryTimeoutMs });
  onTestFinished(() => db.close());
  return { db, proxy };
}

describe('the platform database silent on its open connections', () => {
  it('answers a statement with UNAVAILABLE and runs the next one on a new connection', async () => {
    const { db, proxy } = await silenceableDatabase(500);
    await db.query('SELECT 1');

    proxy.blackhole(true); // the pool's one open connection swallows everything; new ones pass
    await expect(db.query('SELECT 1')).rejects.toMatchObject({ code: 'UNAVAILABLE' });

    const { rows } = await db.query<{ n: number }>('SELECT 2 AS n');
    expect(rows).toEqual([{ n: 2 }]);
  });

  it('answers a transaction with UNAVAILABLE and discards its connection', async () => {
    const { db, proxy } = await silenceableDatabase(500);
    await db.query('SELECT 1');

    proxy.blackhole(true);
    await expect(db.transaction((tx) => tx.query('SELECT 1'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });

    await expect(db.transaction((tx) => tx.query<{ n: number }>('SELECT 3 AS n'))).resolves.toMatchObject({ rows: [{ n: 3 }] });
  });

  it('answers the readiness ping with UNAVAILABLE', async () => {
    const { db, proxy } = await silenceableDatabase(500);
    await db.ping();

    proxy.blackhole(true);
    await expect(db.ping()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(db.ping()).resolves.toBeUndefined();
  });

  it('does not cut a session’s statement (migrations, CREATE INDEX CONCURRENTLY) at the statements’ limit', async () => {
    const { db } = await silenceableDatabase(100);
    const slept = await db.session!((session) => session.query<{ done: boolean }>('SELECT true AS done FROM pg_sleep(0.5)'));
    expect(slept.rows).toEqual([{ done: true }]);
  });
});
