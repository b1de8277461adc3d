import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary, tail } from './binaries.ts';
import { onProcessExit } from './exit-cleanup.ts';
import { freePort } from './free-port.ts';
import { waitFor } from './wait-for.ts';

export interface StartRedisOptions {
  /** Milliseconds to wait for the server to answer PING after spawning it. @default 10000 */
  readyTimeoutMs?: number;
  /**
   * Keep data across `stop()`/`start()` with an append-only file fsynced on every write, as a
   * production Redis would be configured. @default false (data is lost on stop)
   */
  persistent?: boolean;
}

export interface RedisInstance {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The running server's process id (e.g. to read its CPU time); undefined while it is stopped. */
  readonly pid: number | undefined;
  /**
   * Stops the server (SIGTERM, then SIGKILL after 5 s; `crash`: SIGKILL at once) and waits for it
   * to exit. Its data is lost unless `persistent`.
   */
  stop(mode?: 'graceful' | 'crash'): Promise<void>;
  /** Spawns the server again on the same port and waits until it answers PING. */
  start(): Promise<void>;
  /** Stops the server and deletes its directory. Idempotent. */
  dispose(): Promise<void>;
}

const INSTALL_HINT = 'apt-get install redis-server (Redis 7 or newer)';
const KILL_AFTER_MS = 5000;

/** One PING over a raw socket: true when the server answers +PONG. */
export function pingRedis(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/**
 * A private, throwaway `redis-server` run as a child process (not daemonized) on a free port,
 * with persistence off. Dispose it.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisInstance> {
  const binary = findBinary('redis-server', { installHint: INSTALL_HINT });
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const dir = await mkdtemp(join(tmpdir(), 'tributary-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  let disposed = false;

  const unregisterExit = onProcessExit(() => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async () => {
    if (disposed) throw new Error(`Redis on port ${port} was disposed; it cannot start again`);
    if (child) return;
    output = '';
    const spawned = spawn(
      binary,
      [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '',
        ...(options.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
        '--dir', dir, '--daemonize', 'no',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = spawned;
    const gone = new AbortController();
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-20_000);
    };
    spawned.stdout?.on('data', collect);
    spawned.stderr?.on('data', collect);
    exited = new Promise((resolve) => {
      spawned.once('close', (code, signal) => {
        if (child === spawned) child = undefined;
        gone.abort(new Error(`redis-server exited (${code ?? signal}) before answering PING:\n${tail(output)}`));
        resolve();
      });
      spawned.once('error', (error) => {
        if (child === spawned) child = undefined;
        gone.abort(new Error(`could not spawn ${binary}: ${error.message}`));
        resolve();
      });
    });
    try {
      await waitFor(() => pingRedis(port), {
        timeoutMs: readyTimeoutMs,
        intervalMs: 25,
        message: `redis-server on port ${port} did not answer PING`,
        signal: gone.signal,
      });
    } catch (error) {
      const died = gone.signal.aborted;
      await stop();
      // A server that died already put its output in the reason; one that hangs has not.
      throw !died && error instanceof Error ? new Error(`${error.message}\n${tail(output)}`, { cause: error }) : error;
    }
  };

  const stop = async (mode: 'graceful' | 'crash' = 'graceful') => {
    const current = child;
    if (!current) return;
    current.kill(mode === 'crash' ? 'SIGKILL' : 'SIGTERM');
    const escalate = setTimeout(() => current.kill('SIGKILL'), KILL_AFTER_MS);
    try {
      await exited;
    } finally {
      clearTimeout(escalate);
    }
  };

  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      await stop();
    } finally {
      unregisterExit();
      await rm(dir, { recursive: true, force: true });
    }
  };

  try {
    await start();
  } catch (error) {
    await dispose().catch(() => {});
    throw error;
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    stop,
    start,
    dispose,
  };
}
