/**
 * Runs a Node script (or any program) to its exit with nothing but the given environment and
 * PATH — as a shell would with those variables exported — and collects what it printed.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';

export interface ProcessRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runProcess(command: string, args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<ProcessRun> {
  const child = spawn(command, args, { cwd: options.cwd, env: { PATH: process.env['PATH'] ?? '', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}
