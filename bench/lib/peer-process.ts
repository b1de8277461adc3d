/**
 * A peer server in its own process (`bench/peers/serve.ts`), so the load client and the server
 * do not share a CPU and the server's CPU time can be read on its own.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { CpuReply, ParentMessage, PeerName, ReadyLine } from '../peers/peer.ts';

export interface PeerProcess {
  readonly name: PeerName;
  /** `ws://127.0.0.1:port/path` */
  readonly url: string;
  readonly pid: number;
  /** The server process's CPU time so far (user + system), in µs. */
  cpuMicros(): Promise<number>;
  /** Asks the server to dispose and exit; kills this one process if it has not exited in time. Idempotent. */
  stop(): Promise<void>;
}

export interface PeerProcessOptions {
  /** Time the server has to print its port, in ms. @default 30000 */
  readonly startTimeoutMs?: number;
  /** Time the server has to exit after `stop`, before it is killed, in ms. @default 10000 */
  readonly stopTimeoutMs?: number;
}

const SERVE_SCRIPT = new URL('../peers/serve.ts', import.meta.url);

export async function startPeerProcess(name: PeerName, options: PeerProcessOptions = {}): Promise<PeerProcess> {
  const child = fork(SERVE_SCRIPT, [name], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const exited = once(child, 'exit').then(() => undefined);
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage);
      const timer = setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs ?? 10_000);
      await exited;
      clearTimeout(timer);
    })());

  try {
    const ready = await readReadyLine(child, name, options.startTimeoutMs ?? 30_000);
    const cpu = createCpuReader(child);
    return { name, url: `ws://127.0.0.1:${ready.port}${ready.path}`, pid: child.pid ?? -1, cpuMicros: cpu, stop };
  } catch (error) {
    await stop();
    throw error;
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

function createCpuReader(child: ChildProcess): () => Promise<number> {
  let nextId = 0;
  const waiting = new Map<number, { resolve: (micros: number) => void; reject: (error: Error) => void }>();
  child.on('message', (message: CpuReply) => {
    if (message.type !== 'cpu') return;
    waiting.get(message.requestId)?.resolve(message.user + message.system);
    waiting.delete(message.requestId);
  });
  child.once('exit', () => {
    for (const { reject } of waiting.values()) reject(new Error('peer process exited'));
    waiting.clear();
  });
  return () =>
    new Promise<number>((resolve, reject) => {
      if (!child.connected) {
        reject(new Error('peer process is gone'));
        return;
      }
      const requestId = nextId++;
      waiting.set(requestId, { resolve, reject });
      child.send({ type: 'cpu', requestId } satisfies ParentMessage);
    });
}
