/**
 * Start-up waits for a Redis that is not listening yet (started with the process: one compose
 * file, one pod) for its connect wait, through the connection errors of the meantime, instead of
 * giving up at the first ECONNREFUSED and starting degraded.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findBinary } from '../helpers/binaries.ts';
import { freePort } from '../helpers/free-port.ts';
import { uniquePrefix } from '../helpers/services.ts';
import { captureLogs, startTestServer } from '../helpers/tributary.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

/** A throwaway redis-server on `port` (a port reserved before the server under test was told it). */
async function startRedisOn(port: number, extraArgs: readonly string[] = []): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-late-redis-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const binary = findBinary('redis-server', { installHint: 'apt-get install redis-server (Redis 7 or newer)' });
  const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  onTestFinished(async () => {
    child.kill('SIGKILL');
    await exited;
  });
}

/** Resolves once something listens on `port` of loopback. */
async function listening(port: number): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => resolve(socket.destroy() !== undefined));
        socket.once('error', () => resolve(false));
      }),
    { message: `nothing listened on ${port}` },
  );
}

describe('start-up with a Redis that comes up after the process', () => {
  it('waits through the refused connections and starts with Redis connected, not degraded', async () => {
    const port = await freePort();
    const logs = captureLogs();
    const refused = deferred<void>();
    const sink = {
      write(line: string) {
        logs.write(line);
        if (line.includes('redis unavailable; reconnecting')) refused.resolve();
      },
    };
    const booting = startTestServer({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' }, { logDestination: sink });
    // Started only once the boot met a refused connection: the case the wait is for.
    await refused.promise;
    await startRedisOn(port);
    const server = await booting;

    const messages = logs.lines.map((line) => line.msg);
    expect(messages).not.toContain('redis not reachable yet; starting anyway and reporting not ready until it is');
    // Both connections (commands and SUBSCRIBE) were ready before the server said it listens.
    const listening = messages.indexOf('Tributary is listening');
    expect(messages.slice(0, listening).filter((message) => message === 'redis reconnected')).toHaveLength(2);
    expect(logs.lines.find((line) => line.msg === 'Tributary is listening')).toMatchObject({ redis: true });
    const ready = await fetch(`${server.url}/ready`);
    expect({ status: ready.status, body: (await ready.json()) as unknown }).toEqual({ status: 200, body: { ready: true, checks: { database: 'ok', redis: 'ok' } } });
  });

  it('still starts, reporting not ready, when Redis does not come within the wait', async () => {
    const port = await freePort();
    const logs = captureLogs();
    const server = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' }, { logDestination: logs });
    expect(logs.lines.map((line) => line.msg)).toContain('redis not reachable yet; starting anyway and reporting not ready until it is');
    await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 503, { message: '/ready did not say 503 without Redis' });
  });

  // A wrong password is no outage: no retry mends it, and a process that started anyway would
  // only ever say "not ready" (as a database refusing its login fails the start).
  it.each([
    ['a wrong password', ':wrong-password-1789@', 'WRONGPASS'],
    ['no password', '', 'NOAUTH'],
  ])('fails the start, MISCONFIGURED, when Redis refuses the login (%s), and logs no password', async (_case, credentials, answer) => {
    const port = await freePort();
    await startRedisOn(port, ['--requirepass', 'right']);
    await listening(port);
    const logs = captureLogs();
    const failure = await startTestServer(
      { REDIS_URL: `redis://${credentials}127.0.0.1:${port}`, REDIS_KEY_PREFIX: uniquePrefix(), LOG_LEVEL: 'info' },
      { logDestination: logs },
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ code: 'MISCONFIGURED', message: expect.stringContaining(`Redis refused the login in REDIS_URL (${answer})`) as unknown });
    // ioredis's error carries the AUTH command's arguments: the password.
    expect(logs.lines.some((line) => line.msg === 'redis unavailable; reconnecting')).toBe(true);
    expect(JSON.stringify(logs.lines)).not.toContain('wrong-password-1789');
  });

  it('fails the start, MISCONFIGURED, when REDIS_URL is a node of a Redis Cluster', async () => {
    const port = await freePort();
    await startRedisOn(port, ['--cluster-enabled', 'yes']);
    await listening(port);
    const failure = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: uniquePrefix() }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ code: 'MISCONFIGURED', message: expect.stringContaining('Redis Cluster') as unknown });
  });
});
