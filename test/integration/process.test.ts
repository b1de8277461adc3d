/**
 * The real entry point (`node src/main.ts`, what `npm start` runs) as a child process: it boots
 * on the embedded default, serves, and shuts down gracefully on SIGTERM and SIGINT.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MAIN_SCRIPT, startMainProcess, type MainProcess } from '../helpers/main-process.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';

/** A process of one role on a fresh platform database and the run's Redis (a split role needs both). */
async function startRoleProcess(role: 'server' | 'workers'): Promise<MainProcess> {
  const database = await createTestDatabase();
  return startMainProcess({ TRIBUTARY_ROLE: role, DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
}

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
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('on %s closes sockets with 1001, stops listening and exits 0', async (signal) => {
    const running = await startMainProcess({});
    const client = await openAcknowledgedSocket(`ws://127.0.0.1:${running.port}/graphql`);
    client.send({ id: '1', type: 'subscribe', payload: { query: 'subscription { channel(name: "x") { event } }' } });

    running.child.kill(signal);
    expect(await client.closed()).toEqual({ code: 1001, reason: 'Server shutting down' });
    expect(await running.exited).toEqual({ code: 0, signal: null });
    expect(running.logs.map((entry) => entry['msg'])).toContain('stopped');
    await expect(fetch(`http://127.0.0.1:${running.port}/health`)).rejects.toThrow();
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
      'Invalid configuration: JWT_SECRET or JWT_JWKS_URL must be set when NODE_ENV=production (development mode would let anyone act as admin)',
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
      body: { ready: true, checks: { database: 'ok', redis: 'ok' } },
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
