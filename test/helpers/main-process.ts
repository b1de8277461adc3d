/**
 * The real entry point (`node src/main.ts`, what `npm start` and `npm run workers` run) as a child
 * process of the test: its JSON log lines parsed as they arrive, its exit awaitable. It is killed
 * (SIGKILL) after the test if it is still running, and its data folder deleted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { pgliteDataDir } from './pglite-template.ts';
import { deferred } from './wait-for.ts';

/** The entry point's path, for tests that spawn it themselves (e.g. to read a refusal to start). */
export const MAIN_SCRIPT = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface MainProcess {
  readonly child: ChildProcess;
  /** The port of its HTTP server (GraphQL, or only health and metrics in the workers role). */
  readonly port: number;
  /** Every JSON log line so far. */
  readonly logs: readonly Record<string, unknown>[];
  readonly stderr: () => string;
  readonly exited: Promise<ProcessExit>;
}

export interface MainProcessOptions {
  /**
   * With the embedded database (no `DATABASE_URL`, no `DATA_DIR`): start on a copy of the run's
   * migrated PGlite folder, where the process finds no migration to apply (1–3 s less of its
   * start), instead of one it migrates itself as a first start does. @default false
   */
  readonly migrated?: boolean;
}

/**
 * Starts the entry point with `env` on top of a minimal environment (port 0 on 127.0.0.1, a data
 * folder of its own — a copy of the run's initialised PGlite folder when it uses the embedded
 * database —, `LOG_LEVEL=info`) and resolves once it logs "Tributary is listening";
 * rejects with its standard error if it exits first.
 */
export async function startMainProcess(env: Record<string, string>, options: MainProcessOptions = {}): Promise<MainProcess> {
  // With the embedded database, an initialised copy (a first start's initdb costs ~7 s).
  const dataDir =
    env['DATABASE_URL'] === undefined && env['DATA_DIR'] === undefined
      ? await pgliteDataDir({ migrated: options.migrated === true })
      : await mkdtemp(join(tmpdir(), 'tributary-main-'));
  onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [MAIN_SCRIPT], {
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  // Registered after the data folder's removal, so it runs first; awaiting the exit means the
  // process holds no connection when the test's databases are dropped.
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const logs: Record<string, unknown>[] = [];
  const listening = deferred<number>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const entry = JSON.parse(line) as Record<string, unknown>;
    logs.push(entry);
    if (entry['msg'] === 'Tributary is listening') listening.resolve(Number(new URL(String(entry['url'])).port));
  });
  void exited.then(({ code }) => listening.reject(new Error(`exited with ${code} before listening: ${stderr}`)));
  return { child, port: await listening.promise, logs, stderr: () => stderr, exited };
}
