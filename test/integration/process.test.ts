/**
 * The real entry point (`node src/main.ts`, what `npm start` runs) as a child process: it boots
 * on the embedded default, serves, and shuts down gracefully on SIGTERM and SIGINT.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from '../helpers/free-port.ts';
import { MAIN_SCRIPT, startMainProcess, type MainProcess } from '../helpers/main-process.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

/** A process of one role on a fresh platform database and the run's Redis (a split role needs both). */
async function startRoleProcess(role: 'server' | 'workers'): Promise<MainProcess> {
  const database = await createTestDatabase({ migrated: true });
  return startMainProcess({ TRIBUTARY_ROLE: role, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
}

/** A raw TCP connection to the process, open once `written` (maybe nothing) is on its way. */
async function rawConnection(port: number, written: string): Promise<{ closed: Promise<unknown> }> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  if (written !== '') await new Promise<void>((resolve, reject) => socket.write(written, (error) => (error ? reject(error) : resolve())));
  return { closed };
}

/** Runs `command args` to its end with `env` alone: its exit code and standard error. */
async function runToExit(command: string, args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command, args, { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

/**
 * An embedded process on a copy of the run's migrated PGlite folder: what these tests are about is
 * the process — its signals, its listener, its settings —, not the migrations (storage.test.ts);
 * the first test below boots as a first start does, applying them.
 */
const startMigrated = (env: Record<string, string>) => startMainProcess(env, { migrated: true });

describe('the tributary process', () => {
  it('boots on the embedded default with no Postgres or Redis and serves GraphQL', async () => {
    const running = await startMainProcess({});
    const response = await fetch(`http://127.0.0.1:${running.port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { subject roles } }' }),
    });
    expect(await response.json()).toEqual({ data: { viewer: { subject: 'development', roles: ['admin'] } } });
    expect(running.logs.find((entry) => entry['msg'] === 'Tributary is listening')).toMatchObject({ database: 'embedded', redis: false });
    expect(running.logs.some((entry) => entry['level'] === 40 && String(entry['msg']).includes('development mode'))).toBe(true);
    expect(running.logs.some((entry) => String(entry['msg']).includes('DATABASE_URL'))).toBe(false);
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('on %s closes sockets with 1001, stops listening and exits 0', async (signal) => {
    const running = await startMigrated({});
    const client = await openAcknowledgedSocket(`ws://127.0.0.1:${running.port}/graphql`);
    client.send({ id: '1', type: 'subscribe', payload: { query: 'subscription { channel(name: "x") { event } }' } });

    running.child.kill(signal);
    expect(await client.closed()).toEqual({ code: 1001, reason: 'Server shutting down' });
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(running.logs.map((entry) => entry['msg'])).toContain('stopped');
    await expect(fetch(`http://127.0.0.1:${running.port}/health`)).rejects.toThrow();
  });

  it('finishes its shutdown when a second SIGINT arrives during it (Ctrl-C reaches npm and node, and npm passes it on)', async () => {
    const running = await startMigrated({});
    running.child.kill('SIGINT');
    await waitFor(() => running.logs.some((entry) => entry['msg'] === 'shutting down'), { message: 'the shutdown began' });
    running.child.kill('SIGINT');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(running.logs.map((entry) => entry['msg'])).toContain('stopped');
  });

  it('on SIGTERM closes connections that sent nothing or half a request instead of waiting out SHUTDOWN_TIMEOUT_MS', async () => {
    // A deadline far beyond the test's own timeout: exit 0 means nothing waited for it.
    const running = await startMigrated({ SHUTDOWN_TIMEOUT_MS: '60000' });
    const silent = await rawConnection(running.port, '');
    const partialHeaders = await rawConnection(running.port, 'GET /health HTTP/1.1\r\nHost: x\r\n');
    // A host the development-mode guard knows: one it does not would be answered (403) before the body.
    const partialBody = await rawConnection(running.port, 'POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":');
    // Answered after those were accepted (in order), so the server holds all three.
    expect((await fetch(`http://127.0.0.1:${running.port}/health`)).status).toBe(200);

    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    await Promise.all([silent.closed, partialHeaders.closed, partialBody.closed]);
    const messages = running.logs.map((entry) => entry['msg']);
    expect(messages).toContain('stopped');
    expect(messages).not.toContain('shutdown took too long; exiting');
  });

  it('under npm start, stops on the SIGTERM npm is sent: the script runs node in place of its shell', async () => {
    // Migrated: the signal's way is under test, not a first start (PGlite's initdb on an empty
    // folder, ~7 s: database-open-messages.test.ts).
    const dataDir = await pgliteDataDir({ migrated: true });
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: REPOSITORY,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? tmpdir(), PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own: whatever npm started, an orphaned server included, is killed after the test.
      detached: true,
    });
    const exited = once(npm, 'exit');
    onTestFinished(async () => {
      try {
        process.kill(-(npm.pid ?? 0), 'SIGKILL');
      } catch {
        // The group is gone already.
      }
      await exited;
    });
    let stderr = '';
    npm.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const messages: unknown[] = [];
    const listening = deferred<number>();
    createInterface({ input: npm.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as Record<string, unknown>;
      messages.push(entry['msg']);
      if (entry['msg'] === 'Tributary is listening') listening.resolve(Number(new URL(String(entry['url'])).port));
    });
    void exited.then(() => listening.reject(new Error(`npm start exited before listening: ${stderr}`)));
    const port = await listening.promise;

    npm.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
    expect(messages).toContain('stopped');
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  });

  it('says where a failed start could not connect and why (the address refused), never the password in DATABASE_URL', async () => {
    const port = await freePort();
    const env = { DATABASE_URL: `postgres://tributary:s3cret-password@127.0.0.1:${port}/platform` };
    const started = await runToExit(process.execPath, [MAIN_SCRIPT], env);
    expect(started.code).toBe(1);
    // An expected failure: its message and causes, no stack.
    // Where it tried and what to check, not the requests' "unavailable right now; retry shortly".
    const said = `Could not connect to the database at DATABASE_URL 127.0.0.1:${port} (postgres://tributary:***@127.0.0.1:${port}/platform): the connection was refused — is Postgres running there, and are the host and port right?\ncaused by: Error: connect ECONNREFUSED 127.0.0.1:${port}\n`;
    expect(started.stderr).toBe(`Tributary failed to start: ${said}`);

    const migrated = await runToExit(process.execPath, [join(REPOSITORY, 'src/cli/migrate.ts')], env);
    expect(migrated).toEqual({
      code: 1,
      stderr: `Migration failed: ${said}`,
    });
    expect(started.stderr + migrated.stderr).not.toContain('s3cret-password');
  });

  // Two embedded servers boot side by side: twice the start-up of one test.
  it('in development mode listens on 127.0.0.1 unless HOST says otherwise, and warns about a wider HOST', { timeout: 60_000 }, async () => {
    const [byDefault, wider] = await Promise.all([startMigrated({ HOST: '' }), startMigrated({ HOST: '0.0.0.0' })]);
    expect(byDefault.logs.find((entry) => entry['msg'] === 'Tributary is listening')).toMatchObject({ url: `http://127.0.0.1:${byDefault.port}/graphql` });
    const hostWarnings = (running: MainProcess) => running.logs.filter((entry) => entry['level'] === 40 && String(entry['msg']).includes('non-loopback HOST'));
    expect(hostWarnings(byDefault)).toEqual([]);
    expect(hostWarnings(wider)).toEqual([expect.objectContaining({ host: '0.0.0.0' })]);
  });

  it('warns at start that REDIS_URL with the embedded database is for one instance only', async () => {
    const running = await startMigrated({ REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    expect(running.logs.filter((entry) => entry['level'] === 40 && String(entry['msg']).includes('several instances need a shared DATABASE_URL'))).toHaveLength(1);
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses to start in production without JWT configuration, with one clear line', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tributary-main-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [MAIN_SCRIPT], {
      env: { PATH: process.env['PATH'] ?? '', NODE_ENV: 'production', DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([
      'Invalid configuration: JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL must be set when NODE_ENV=production (development mode would let anyone act as admin)',
    ]);
  });

  it('reports an invalid variable by name and exits 1', async () => {
    const child = spawn(process.execPath, [MAIN_SCRIPT], { env: { PATH: process.env['PATH'] ?? '', PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('Invalid configuration: PORT must be an integer from 0 to 65535 (got "eighty")');
  });

  it('in the workers role (npm run workers) reports ready, serves no GraphQL and stops cleanly on SIGTERM', async () => {
    const running = await startRoleProcess('workers');
    expect(running.logs.find((entry) => entry['msg'] === 'Tributary is listening')).toMatchObject({ role: 'workers', database: 'postgres', redis: true });
    expect(running.logs.map((entry) => entry['msg'])).toContain('workers ready');
    const ready = await fetch(`http://127.0.0.1:${running.port}/ready`);
    expect({ status: ready.status, body: (await ready.json()) as unknown }).toEqual({
      status: 200,
      body: { ready: true, checks: { database: 'ok', redis: 'ok', workers: 'ok' } },
    });
    expect((await fetch(`http://127.0.0.1:${running.port}/metrics`)).status).toBe(200);
    const graphql = await fetch(`http://127.0.0.1:${running.port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
    expect(graphql.status).toBe(404);
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(running.logs.map((entry) => entry['msg'])).toContain('stopped');
  });

  it('in the server role serves GraphQL and starts no workers', async () => {
    const running = await startRoleProcess('server');
    const response = await fetch(`http://127.0.0.1:${running.port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
    expect(await response.json()).toEqual({ data: { viewer: { subject: 'development' } } });
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(running.logs.map((entry) => entry['msg'])).not.toContain('workers ready');
  });

  it.each([
    [{ TRIBUTARY_ROLE: 'scheduler' }, 'Invalid configuration: TRIBUTARY_ROLE must be all, server or workers'],
    [
      { TRIBUTARY_ROLE: 'workers' },
      'Invalid configuration: TRIBUTARY_ROLE=workers needs DATABASE_URL and REDIS_URL (shared with the other processes); without them run everything in one process (TRIBUTARY_ROLE=all, npm start)',
    ],
  ])('refuses the role settings %o with one clear line', async (env, line) => {
    const child = spawn(process.execPath, [MAIN_SCRIPT], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr.trim()).toBe(line);
  });
});
