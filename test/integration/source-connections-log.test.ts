/**
 * The CDC source pools (`cdc/wal/source-connections.ts`) against a real Postgres: a pooled
 * connection the source database ends (an administrator's `pg_terminate_backend`, a restart) does
 * not crash the process, and is logged rather than swallowed — an idle one at `warn`, like the
 * outbox pool's, one held by a caller at `debug` (its statement rejects as well).
 */
import { expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

async function setUp() {
  const db = await createTestDatabase();
  const sink = captureLogs();
  const connections = createSourceConnections(db.url, { logger: createLogger({ level: 'debug', destination: sink }) });
  onTestFinished(() => connections.dispose());
  const admin = openTestPool(db.url, { max: 1 });
  const terminate = (pid: number) => admin.query('SELECT pg_terminate_backend($1)', [pid]);
  return { connections, sink, terminate };
}

const backendPid = async (client: { query: (text: string) => Promise<{ rows: { pid: number }[] }> }) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

it('logs an idle pooled connection the source database ended, at warn, with the error', async () => {
  const { connections, sink, terminate } = await setUp();
  const pid = await connections.withClient(backendPid);
  await terminate(pid);
  const line = await waitFor(() => sink.lines.find((entry) => entry.msg === 'source database connection lost'));
  expect(line).toMatchObject({ level: 40, err: { message: expect.stringMatching(/terminat/i) as unknown } });
  // The pool goes on: the next statement gets a new connection.
  expect(await connections.withClient(backendPid)).not.toBe(pid);
});

it('logs a held connection the source database ended, at debug', async () => {
  const { connections, sink, terminate } = await setUp();
  await connections.withClient(async (client) => {
    await terminate(await backendPid(client));
    const line = await waitFor(() => sink.lines.find((entry) => entry.msg === 'source database connection lost while in use'));
    expect(line).toMatchObject({ level: 20, err: { message: expect.stringMatching(/terminat/i) as unknown } });
  });
});
