/**
 * What the runner shares with the processes it forks (a peer server, the fan-out load client):
 * request/reply over the IPC channel, and a stop that cannot hang.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';

/** `Omit` over each member of a union: a request before the requester numbers it. */
export type Unnumbered<T> = T extends unknown ? Omit<T, 'requestId'> : never;

/**
 * Request/reply over the child's IPC channel, matched by `requestId`. A reply that `failure`
 * recognises (it returns the child's message) rejects; so does every pending request when the
 * child exits.
 */
export function createIpcRequester<Request extends { readonly requestId: number }, Reply extends { readonly requestId: number }>(
  child: ChildProcess,
  what: string,
  failure: (reply: Reply) => string | undefined = () => undefined,
): (request: Unnumbered<Request>) => Promise<Reply> {
  let nextId = 0;
  const waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  child.on('message', (reply: Reply) => {
    const waiter = waiting.get(reply.requestId);
    waiting.delete(reply.requestId);
    const message = failure(reply);
    if (message === undefined) waiter?.resolve(reply);
    else waiter?.reject(new Error(`${what}: ${message}`));
  });
  child.once('exit', (code, signal) => {
    for (const { reject } of waiting.values()) reject(new Error(`${what} exited (${signal ?? code})`));
    waiting.clear();
  });
  return (request) =>
    new Promise<Reply>((resolve, reject) => {
      if (!child.connected) {
        reject(new Error(`${what} is gone`));
        return;
      }
      const requestId = nextId++;
      waiting.set(requestId, { resolve, reject });
      child.send({ ...request, requestId });
    });
}

/**
 * An idempotent stop: unless the child already exited, `requestExit` asks it to (over IPC), and
 * the child is killed if it has not exited `timeoutMs` later. A child paused with `pauseChild` is
 * resumed first: a stopped process reads no IPC.
 */
export function childStopper(child: ChildProcess, requestExit: () => Promise<unknown> | void, timeoutMs: number): () => Promise<void> {
  const exited = once(child, 'exit').then(() => undefined);
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      resumeChild(child);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      if (child.connected) await Promise.resolve(requestExit()).catch(() => undefined);
      await exited;
      clearTimeout(timer);
    })());
}

/** Pids paused with `pauseChild`, resumed when this process exits however it exits (short of SIGKILL). */
const paused = new Set<number>();
process.once('exit', () => {
  for (const pid of paused) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone already
    }
  }
});

/**
 * Suspends a child (SIGSTOP): it uses no CPU until `resumeChild`. A workload pauses the servers
 * (and their load clients) it is not measuring, so an idle server's timers and keep-alives do not
 * run during another server's step. Nothing is lost: the kernel holds what arrives meanwhile.
 */
export function pauseChild(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  if (child.kill('SIGSTOP')) paused.add(child.pid);
}

/** Resumes a child paused with `pauseChild` (SIGCONT); harmless on one that is not paused. */
export function resumeChild(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGCONT');
  paused.delete(child.pid);
}
