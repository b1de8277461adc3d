/**
 * A peer server in its own process (`bench/peers/serve.ts`), so the load client and the server
 * do not share a CPU and the server's CPU time and memory can be read on their own.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildMessage, ParentMessage, PeerName, ReadyLine } from '../peers/peer.ts';
import { childStopper, createIpcRequester, pauseChild, resumeChild } from './child-ipc.ts';

export interface PeerProcess {
  readonly name: PeerName;
  /** `ws://127.0.0.1:port/path` */
  readonly url: string;
  /** `http://127.0.0.1:port/path`: the same endpoint for HTTP POST. */
  readonly httpUrl: string;
  readonly pid: number;
  /** The server process's CPU time so far (user + system), in µs. */
  cpuMicros(): Promise<number>;
  /** The server process's memory after a full garbage collection. */
  memory(): Promise<PeerMemory>;
  /** Suspends the server process (SIGSTOP): while another server is measured, this one uses no CPU. */
  pause(): void;
  /** Resumes it (SIGCONT). */
  resume(): void;
  /** Asks the server to dispose and exit; kills this one process if it has not exited in time. Idempotent. */
  stop(): Promise<void>;
}

export interface PeerMemory {
  /** Resident set size, in bytes. */
  readonly rss: number;
  /** V8 heap in use, in bytes. */
  readonly heapUsed: number;
  /** `Buffer`s and other memory held by JS objects outside the heap, in bytes. */
  readonly external: number;
  /** False when the server could not collect garbage first: the numbers include garbage. */
  readonly collected: boolean;
}

export interface PeerProcessOptions {
  /** Extra environment variables for the server process (e.g. `REDIS_URL`). @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /** Time the server has to print its port, in ms. @default 30000 */
  readonly startTimeoutMs?: number;
  /** Time the server has to exit after `stop`, before it is killed, in ms. @default 10000 */
  readonly stopTimeoutMs?: number;
}

const SERVE_SCRIPT = new URL('../peers/serve.ts', import.meta.url);

export async function startPeerProcess(name: PeerName, options: PeerProcessOptions = {}): Promise<PeerProcess> {
  const child = fork(SERVE_SCRIPT, [name], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, ...options.env },
    // So `memory` can collect garbage before sampling; it costs nothing until gc() is called.
    execArgv: [...process.execArgv, '--expose-gc'],
  });
  const stop = childStopper(child, () => void child.send({ type: 'stop' } satisfies ParentMessage), options.stopTimeoutMs ?? 10_000);

  try {
    const ready = await readReadyLine(child, name, options.startTimeoutMs ?? 30_000);
    const ask = createIpcRequester<Extract<ParentMessage, { requestId: number }>, ChildMessage>(child, `peer ${name}`);
    return {
      name,
      url: `ws://127.0.0.1:${ready.port}${ready.path}`,
      httpUrl: `http://127.0.0.1:${ready.port}${ready.path}`,
      pid: child.pid ?? -1,
      cpuMicros: async () => {
        const reply = await ask({ type: 'cpu' });
        if (reply.type !== 'cpu') throw new Error(`${name}: expected a cpu reply, got ${reply.type}`);
        return reply.user + reply.system;
      },
      memory: async () => {
        const reply = await ask({ type: 'memory' });
        if (reply.type !== 'memory') throw new Error(`${name}: expected a memory reply, got ${reply.type}`);
        return { rss: reply.rss, heapUsed: reply.heapUsed, external: reply.external, collected: reply.collected };
      },
      pause: () => pauseChild(child),
      resume: () => resumeChild(child),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Waits until a (running) server is idle — under 5 % of a core over 100 ms: a backlog worked off,
 * the timers that came due while it was paused run — for at most `maxMs`.
 */
export async function waitUntilIdle(peer: Pick<PeerProcess, 'cpuMicros'>, maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs;
  let before = await peer.cpuMicros();
  while (performance.now() < deadline) {
    await sleep(100);
    const now = await peer.cpuMicros();
    if (now - before < 5000) return;
    before = now;
  }
}

/** Waits for the first stdout line (the JSON ready line); later lines are passed on to stderr. */
async function readReadyLine(child: ChildProcess, name: PeerName, timeoutMs: number): Promise<ReadyLine> {
  if (!child.stdout) throw new Error('peer process has no stdout');
  const lines = createInterface({ input: child.stdout });
  return new Promise<ReadyLine>((resolve, reject) => {
    let ready = false;
    const fail = (error: Error) => {
      clearTimeout(timer);
      if (!ready) reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`${name}: no ready line within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, signal) => fail(new Error(`${name}: exited (${signal ?? code}) before it was ready`)));
    lines.on('line', (line) => {
      if (ready) {
        process.stderr.write(`[${name}] ${line}\n`);
        return;
      }
      ready = true;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as ReadyLine);
      } catch {
        reject(new Error(`${name}: expected a JSON ready line, got ${JSON.stringify(line)}`));
      }
    });
  });
}
