/**
 * A private, throwaway `redis-server` for the peers that run in Redis mode: a free loopback port,
 * no persistence, stopped (by its own pid) at the end. Its CPU time is read from /proc so a
 * report can say what the Redis hop cost on top of the server process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';

export interface RedisServer {
  /** `redis://127.0.0.1:port` */
  readonly url: string;
  readonly pid: number;
  /** CPU time (user + system) of the redis-server process so far, in µs; NaN where /proc is missing. */
  cpuMicros(): Promise<number>;
  /** SIGTERM, then SIGKILL if it has not exited in time. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** @default 'redis-server' (from PATH) */
  readonly command?: string;
  /** Time to wait for "Ready to accept connections", in ms. @default 10000 */
  readonly startTimeoutMs?: number;
  /** Time to wait for the exit after SIGTERM, in ms. @default 5000 */
  readonly stopTimeoutMs?: number;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const child = spawn(options.command ?? 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit').then(() => undefined);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs ?? 5000);
      await exited;
      clearTimeout(timer);
    })());

  try {
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timeoutMs = options.startTimeoutMs ?? 10_000;
      const timer = setTimeout(() => reject(new Error(`redis-server not ready within ${timeoutMs} ms: ${output.slice(-500)}`)), timeoutMs);
      const onData = (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${signal ?? code}): ${output.slice(-500)}`));
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  // Drained so a chatty server never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  const pid = child.pid ?? -1;
  const ticksPerSecond = clockTicksPerSecond();
  return {
    url: `redis://127.0.0.1:${port}`,
    pid,
    async cpuMicros() {
      try {
        // /proc/<pid>/stat: after "(comm)", utime and stime are the 12th and 13th fields, in clock ticks.
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1_000_000;
      } catch {
        return Number.NaN;
      }
    },
    stop,
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}
