/**
 * `scripts/require-node.mjs`, preloaded before the entry point (`node --import
 * ./scripts/require-node.mjs src/main.ts`): on a Node older than 22.18 one line says which Node is
 * needed and how to get it, instead of ERR_UNKNOWN_FILE_EXTENSION for src/main.ts; on a recent Node
 * it adds nothing. The machine's own older Node when it has one (/usr/bin/node), and the version
 * boundary on this Node with its reported version set by a preload before the check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../helpers/run-process.ts';

const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));
const CHECK = './scripts/require-node.mjs';
const SYSTEM_NODE = '/usr/bin/node';

const run = (node: string, args: readonly string[]) => runProcess(node, args, { cwd: REPOSITORY, env: { PORT: '0' } });

const refusal = (version: string) =>
  `Tributary needs Node 22.18+ or 24.2+ (found ${version}): it runs its TypeScript sources directly, with import.meta.main.\n` +
  'Install Node 24 (LTS) and run again — with nvm: nvm install 24 && nvm use 24; with fnm: fnm use --install-if-missing 24; or from https://nodejs.org/en/download.\n';

/** A preload that makes this Node report `version` (run before the check: preloads run in order). */
const reporting = (version: string) =>
  `data:text/javascript,${encodeURIComponent(
    `Object.defineProperty(process, 'version', { value: 'v${version}' }); Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '${version}' } });`,
  )}`;

const systemVersion = existsSync(SYSTEM_NODE) ? spawnSync(SYSTEM_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim() : '';
function olderThan2218(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major < 22 || (major === 22 && minor < 18);
}
const systemNodeIsOld = systemVersion !== '' && olderThan2218(systemVersion);

describe('scripts/require-node.mjs', () => {
  it.runIf(systemNodeIsOld)(`on the machine's ${systemVersion || 'older'} Node, says what is needed instead of ERR_UNKNOWN_FILE_EXTENSION`, async () => {
    const bare = await run(SYSTEM_NODE, ['src/main.ts']);
    expect(bare.stderr).toContain('ERR_UNKNOWN_FILE_EXTENSION');
    expect(await run(SYSTEM_NODE, ['--import', CHECK, 'src/main.ts'])).toEqual({ code: 1, stdout: '', stderr: refusal(systemVersion) });
  });

  it('refuses 22.17 and lets 22.18 through, at the boundary', async () => {
    expect(await run(process.execPath, ['--import', reporting('22.17.1'), '--import', CHECK, 'src/cli/token.ts', '--help'])).toEqual({ code: 1, stdout: '', stderr: refusal('v22.17.1') });
    const allowed = await run(process.execPath, ['--import', reporting('22.18.0'), '--import', CHECK, 'src/cli/token.ts', '--help']);
    expect(allowed).toMatchObject({ code: 0, stderr: '' });
  });

  // Node 23 and 24.0–24.1 strip types but have no import.meta.main: the entry point would exit 0
  // having done nothing.
  it.each(['23.11.0', '24.1.0'])('refuses %s, which has no import.meta.main, and lets 24.2 through', async (version) => {
    expect(await run(process.execPath, ['--import', reporting(version), '--import', CHECK, 'src/cli/token.ts', '--help'])).toEqual({ code: 1, stdout: '', stderr: refusal(`v${version}`) });
    expect(await run(process.execPath, ['--import', reporting('24.2.0'), '--import', CHECK, 'src/cli/token.ts', '--help'])).toMatchObject({ code: 0, stderr: '' });
  });

  it('adds nothing on this Node: the same output and exit as without it', async () => {
    const [without, withCheck] = await Promise.all([run(process.execPath, ['src/cli/token.ts', '--help']), run(process.execPath, ['--import', CHECK, 'src/cli/token.ts', '--help'])]);
    expect(withCheck).toEqual(without);
    expect(withCheck.code).toBe(0);
  });
});
