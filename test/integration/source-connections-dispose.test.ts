/**
 * Disposing the connections of a source database that does not answer (a host that accepts the
 * connection and never says a word): a server's shutdown must not wait out the connection
 * attempts still in progress — here with a connect timeout of an hour, which a dispose that
 * waited for them would never see the end of.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { expect, it, onTestFinished } from 'vitest';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { waitFor } from '../helpers/wait-for.ts';

const HOUR_MS = 3_600_000;

async function silentHost(): Promise<{ url: string; sockets: { socket: Socket; closed: boolean }[] }> {
  const sockets: { socket: Socket; closed: boolean }[] = [];
  const server = createServer((socket) => {
    const entry = { socket, closed: false };
    socket.resume(); // reads (and drops) what is sent, so that the peer's end is seen
    socket.on('close', () => (entry.closed = true));
    sockets.push(entry);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    for (const { socket } of sockets) socket.destroy();
    server.close();
  });
  return { url: `postgres://u:p@127.0.0.1:${(server.address() as AddressInfo).port}/gone`, sockets };
}

it('ends a pooled connection attempt the source never answered, and its caller hears so', async () => {
  const host = await silentHost();
  const connections = createSourceConnections(host.url, { connectTimeoutMs: HOUR_MS });
  const used = connections.withClient(() => Promise.resolve('used'));
  const outcome = used.then(
    () => 'resolved',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  await waitFor(() => host.sockets.length === 1, { message: 'the pool connects to the silent host' });

  await connections.dispose();

  expect(await outcome).not.toBe('resolved');
  await waitFor(() => host.sockets[0]?.closed, { message: 'the silent connection is closed' });
});

it('ends a replication connection attempt made with its settings', async () => {
  const host = await silentHost();
  const connections = createSourceConnections(host.url, { connectTimeoutMs: HOUR_MS });
  const { default: pg } = await import('pg');
  const replication = new pg.Client({ ...connections.replicationConfig(), connectionTimeoutMillis: HOUR_MS });
  const connected = replication.connect().then(
    () => 'connected',
    () => 'failed',
  );
  await waitFor(() => host.sockets.length === 1, { message: 'the replication client connects to the silent host' });

  await connections.dispose();

  expect(await connected).toBe('failed');
  await waitFor(() => host.sockets[0]?.closed, { message: 'the silent connection is closed' });
});
