/**
 * A replication connection whose path goes silent without closing (a dead NAT entry, a frozen or
 * partitioned host: the socket stays open, nothing passes, no FIN) must be noticed by the reader,
 * which then reconnects from the confirmed position, instead of waiting for the kernel to give up.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createWalReader } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import { createTestDatabase, sharedPostgresUrl, uniqueName } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

describe('CDC silent replication connection', () => {
  it('reconnects when the replication connection goes silent, and delivers a row written during the silence', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase();
    const writer = new pg.Client({ connectionString: database.url });
    await writer.connect();
    onTestFinished(() => writer.end());
    await writer.query('CREATE TABLE items (id int PRIMARY KEY)');

    const proxy = await startTcpProxy(Number(new URL(sharedPostgresUrl()).port));
    const proxied = new URL(database.url);
    proxied.port = String(proxy.port);
    // Postgres never ends the walsender itself (it would once our replies stopped, closing the
    // proxied connection): the reader alone must notice the silence.
    proxied.searchParams.set('options', '-c wal_sender_timeout=0');
    const connections = createSourceConnections(proxied.toString());
    const chunks: TransactionChunk[] = [];
    const reader = createWalReader({
      connections,
      logger,
      slotName: uniqueName('slot'),
      publicationName: 'tributary_test_pub',
      reconnectMaxDelayMs: 1000,
      statusIntervalMs: 200,
      handle: (chunk) => {
        chunks.push(chunk);
        return Promise.resolve();
      },
    });
    onTestFinished(async () => {
      await reader.stop();
      await connections.dispose();
    });
    const ids = () => chunks.flatMap((chunk) => chunk.changes.map((change) => Number(change.new?.['id'])));

    await reader.start();
    await writer.query('INSERT INTO items (id) VALUES (1)');
    await waitFor(() => ids().includes(1), { message: 'the row before the silence is delivered' });

    // Every connection open now (the replication one, any pooled one) swallows all bytes and
    // stays open; new connections pass.
    proxy.blackhole(true);
    await writer.query('INSERT INTO items (id) VALUES (2)');
    await waitFor(() => ids().includes(2), { timeoutMs: 20_000, message: 'the row written during the silence is delivered after a reconnect' });

    expect(ids().filter((id) => id === 1)).toEqual([1]);
    expect(reader.status().state).toBe('streaming');
  });
});
