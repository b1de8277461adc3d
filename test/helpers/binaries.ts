import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export interface FindBinaryOptions {
  /** Directories searched after PATH, in order. @default [] */
  extraDirs?: readonly string[];
  /** The line that tells a human how to install the binary, e.g. `apt-get install postgresql`. */
  installHint: string;
}

/**
 * The absolute path of `name`, looked up on PATH and then in `extraDirs`.
 * Throws an Error naming the binary and how to install it: a missing server binary must fail the
 * run loudly, never turn into skipped tests.
 */
export function findBinary(name: string, options: FindBinaryOptions): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...(options.extraDirs ?? [])];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = resolve(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      // Not symlink-resolved: redis-server is a link to redis-check-rdb and dispatches on argv[0].
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new Error(
    `The test harness needs the "${name}" binary, but it is not on PATH` +
      (options.extraDirs?.length ? ` nor in ${options.extraDirs.join(', ')}` : '') +
      `. Install it: ${options.installHint}`,
  );
}

/** `/usr/lib/postgresql/<major>/bin` directories (Debian's layout), newest major first. */
export function debianPostgresBinDirs(root = '/usr/lib/postgresql'): string[] {
  let majors: string[];
  try {
    majors = readdirSync(root);
  } catch {
    return [];
  }
  return majors
    .filter((entry) => /^\d+$/.test(entry))
    .sort((a, b) => Number(b) - Number(a))
    .map((major) => join(root, major, 'bin'));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

export interface RunOptions {
  cwd?: string;
  /** Run as this user through `runuser -u <user> --` (only possible as root). */
  asUser?: string;
}

/** Runs a command to completion and collects stdout and stderr interleaved. Never rejects on a non-zero exit. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = options.asUser
    ? [findBinary('runuser', { installHint: 'apt-get install util-linux' }), ['-u', options.asUser, '--', command, ...args]]
    : [command, [...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** The last `lines` lines of `text`, for error messages. */
export function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
