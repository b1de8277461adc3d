import { spawnSync } from 'node:child_process';
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianPostgresBinDirs, findBinary, run, tail } from './binaries.ts';
import type { RunOptions } from './binaries.ts';
import { onProcessExit } from './exit-cleanup.ts';
import { freePort } from './free-port.ts';

export interface StartPostgresOptions {
  /**
   * postgresql.conf settings added to (or overriding) the harness defaults: logical WAL,
   * 20 slots and senders, no fsync, 200 connections.
   * @default {}
   */
  settings?: Record<string, string | number | boolean>;
  /** Seconds `pg_ctl` waits for the server to start or stop. @default 60 */
  timeoutSeconds?: number;
}

export interface PostgresInstance {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`; trust auth, superuser `postgres`. */
  readonly url: string;
  readonly port: number;
  /** The cluster's data directory (inside the instance's temp directory). */
  readonly dataDir: string;
  /** Stops the server and keeps its data. `immediate` simulates a crash (recovery on next start). @default 'fast' */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts a stopped server again, on the same port with the same data. */
  start(): Promise<void>;
  /** Stops the server and deletes its directory. Idempotent. */
  dispose(): Promise<void>;
}

const INSTALL_HINT = 'apt-get install postgresql (Debian/Ubuntu; PostgreSQL 15 or newer)';
const SUPERUSER = 'postgres';

interface Binaries {
  initdb: string;
  pgCtl: string;
}

function findPostgresBinaries(): Binaries {
  const options = { extraDirs: debianPostgresBinDirs(), installHint: INSTALL_HINT };
  // pg_ctl starts the `postgres` next to its own (resolved) path; check it exists for a clear error.
  findBinary('postgres', options);
  return { initdb: findBinary('initdb', options), pgCtl: findBinary('pg_ctl', options) };
}

/**
 * Postgres refuses to run as root, so as root every server command goes through
 * `runuser -u postgres` and the instance directory is handed to that user.
 */
async function osUserFor(dir: string): Promise<RunOptions> {
  if (process.getuid?.() !== 0) return { cwd: dir };
  const uid = await run('id', ['-u', SUPERUSER]);
  const gid = await run('id', ['-g', SUPERUSER]);
  if (uid.code !== 0 || gid.code !== 0) {
    throw new Error(
      `Running as root, the test harness starts Postgres as the "${SUPERUSER}" OS user, which does not exist. ` +
        `Install the server (${INSTALL_HINT}) or run the tests as a non-root user.`,
    );
  }
  await chown(dir, Number(uid.output.trim()), Number(gid.output.trim()));
  return { cwd: dir, asUser: SUPERUSER };
}

function formatSetting(value: string | number | boolean): string {
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  return typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
}

/**
 * A private, throwaway Postgres cluster: `initdb` in a fresh temp directory, logical WAL,
 * trust auth on 127.0.0.1 (including replication connections), a free port. Dispose it.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresInstance> {
  const binaries = findPostgresBinaries();
  const timeout = String(options.timeoutSeconds ?? 60);
  const root = await mkdtemp(join(tmpdir(), 'tributary-pg-'));
  const dataDir = join(root, 'data');
  const logFile = join(root, 'postgres.log');
  let runAs: RunOptions = { cwd: root };
  let unregisterExit = () => {};
  let port: number;
  let running = false;
  let disposed = false;

  const logTail = async () => tail(await readFile(logFile, 'utf8').catch(() => '(no server log)'));

  const pgCtl = async (args: string[], action: string) => {
    const result = await run(binaries.pgCtl, [...args, '-D', dataDir, '-w', '-t', timeout, '-s'], runAs);
    if (result.code !== 0) {
      throw new Error(
        `Postgres ${action} failed (pg_ctl exit ${result.code ?? result.signal}) in ${dataDir}:\n` +
          `${tail(result.output)}\n--- server log (${logFile}) ---\n${await logTail()}`,
      );
    }
  };

  const start = async () => {
    if (disposed) throw new Error(`Postgres at ${dataDir} was disposed; it cannot start again`);
    if (running) return;
    await pgCtl(['start', '-l', logFile], 'start');
    running = true;
  };

  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    if (!running) return;
    await pgCtl(['stop', '-m', mode], `stop (${mode})`);
    running = false;
  };

  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      // A failed `pg_ctl start -w` can leave a server running, hence the pid file check.
      // The data is thrown away, so there is nothing to flush: immediate is fastest.
      if (running || existsSync(join(dataDir, 'postmaster.pid'))) {
        running = true;
        await stop('immediate');
      }
    } finally {
      unregisterExit();
      await rm(root, { recursive: true, force: true });
    }
  };

  try {
    runAs = await osUserFor(root);
    const init = await run(
      binaries.initdb,
      ['-D', dataDir, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      runAs,
    );
    if (init.code !== 0) throw new Error(`initdb failed (exit ${init.code ?? init.signal}):\n${tail(init.output)}`);

    unregisterExit = onProcessExit(() => {
      if (running) {
        const [file, argv] = runAs.asUser
          ? ['runuser', ['-u', runAs.asUser, '--', binaries.pgCtl]]
          : [binaries.pgCtl, [] as string[]];
        spawnSync(file, [...argv, 'stop', '-D', dataDir, '-m', 'immediate', '-w'], { cwd: root, stdio: 'ignore' });
      }
      rmSync(root, { recursive: true, force: true });
    });

    const settings: Record<string, string | number | boolean> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: root,
      wal_level: 'logical',
      max_replication_slots: 20,
      max_wal_senders: 20,
      max_connections: 200,
      fsync: false,
      synchronous_commit: false,
      full_page_writes: false,
      ...options.settings,
    };
    const conf = Object.entries(settings).map(([key, value]) => `${key} = ${formatSetting(value)}`);
    // Appended after initdb's defaults, so these win. The files stay owned by the server's user.
    await appendFile(join(dataDir, 'postgresql.conf'), `\n# tributary test harness\n${conf.join('\n')}\n`);
    await writeFile(
      join(dataDir, 'pg_hba.conf'),
      [
        'local all all trust',
        'host all all 127.0.0.1/32 trust',
        'local replication all trust',
        'host replication all 127.0.0.1/32 trust',
        '',
      ].join('\n'),
    );

    // The free port can be taken between freePort() and bind(); try a fresh one a few times.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      await appendFile(join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
      try {
        await start();
        break;
      } catch (error) {
        if (attempt >= 3 || !/could not bind|address already in use/i.test(await logTail())) throw error;
      }
    }
  } catch (error) {
    await dispose().catch(() => {});
    throw error;
  }

  return {
    url: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop,
    start,
    dispose,
  };
}
