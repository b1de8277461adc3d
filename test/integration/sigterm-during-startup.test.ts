/**
 * A SIGTERM (a rolling deploy, a scale-down) can come while the process is still starting — here
 * while it waits for a Redis that takes the connection and never answers, after the platform
 * database was opened and migrated. It stops gracefully: what has started is disposed, and it
 * exits 0, rather than dying of the signal with its connections and work cut anywhere.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { expect, it, onTestFinished } from 'vitest';
import { MAIN_SCRIPT } from '../helpers/main-process.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { deferred } from '../helpers/wait-for.ts';

it('stops gracefully and exits 0 on SIGTERM during startup', { timeout: 60_000 }, async () => {
  const held = new Set<Socket>();
  const silentRedis = createServer((socket) => void held.add(socket));
  await new Promise<void>((resolve) => silentRedis.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of held) socket.destroy();
        silentRedis.close(() => resolve());
      }),
  );
  const platformDb = await createTestDatabase();

  const child = spawn(process.execPath, [MAIN_SCRIPT], {
    env: {
      PATH: process.env['PATH'] ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: platformDb.url,
      REDIS_URL: `redis://127.0.0.1:${(silentRedis.address() as AddressInfo).port}`,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const messages: string[] = [];
  const migrated = deferred();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = String((JSON.parse(line) as { msg?: unknown }).msg);
    messages.push(message);
    if (message === 'migrations applied') migrated.resolve();
  });

  // Migrated, now waiting for Redis: startup is under way.
  await migrated.promise;
  expect(messages).not.toContain('Tributary is listening');
  child.kill('SIGTERM');

  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  expect({ code, signal }).toEqual({ code: 0, signal: null });
  expect(messages).toContain('shutting down');
  expect(messages).toContain('stopped');
  expect(messages).not.toContain('Tributary is listening');
});
