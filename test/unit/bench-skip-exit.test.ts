import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * `npm run bench -- reconnect --quick` with only Node's own directory on PATH: no redis-server,
 * so the workload is skipped at once (before any server starts).
 */
function runWithoutRedis(extra: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=tributary-source', 'bench/run.ts', 'reconnect', '--quick', ...extra], {
      cwd: ROOT,
      env: { ...process.env, PATH: dirname(process.execPath) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

describe('bench runner', () => {
  it('exits 1 when a workload was skipped for want of a binary, and says how to accept a partial run', { timeout: 60_000 }, async () => {
    const { code, output } = await runWithoutRedis([]);
    expect(output).toContain('reconnect: skipped (no private redis-server');
    expect(output).toContain('--allow-skip');
    expect(code).toBe(1);
  });

  it('exits 0 for the same skip with --allow-skip, still listing what was not measured', { timeout: 60_000 }, async () => {
    const { code, output } = await runWithoutRedis(['--allow-skip']);
    expect(output).toContain('reconnect: no private redis-server');
    expect(output).toContain('the run is incomplete');
    expect(code).toBe(0);
  });
});
