import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { ErrorCode, TributaryError } from '../errors.ts';

/**
 * One process per embedded data folder: PGlite takes no lock of its own, and two processes on one
 * folder each keep their own copy in memory and overwrite the other's files — acknowledged writes
 * vanish without an error. The lock is a folder in DATA_DIR whose time its holder refreshes every
 * second; a holder that died (a crash, SIGKILL) leaves one that goes stale after `staleMs`, and
 * the next process takes it over, waiting that long at most.
 */
export interface DataDirLockOptions {
  /**
   * A lock not refreshed for this long is a dead holder's, in ms (the library's least is 2000).
   * Long enough that a live holder whose event loop stalls (PGlite runs on the main thread, a long
   * migration) is not taken for dead (`DATA_DIR_LOCK_STALE_MS`). @default 10000 (the library's default)
   */
  readonly staleMs?: number;
  /** How long to wait for the lock before refusing to start, in ms. @default a little over `staleMs` */
  readonly waitMs?: number;
  /**
   * Called once if the lock is lost while held: another process took it over (it judged it stale:
   * this one's refresh was late by over `staleMs`), or its folder was removed (`rm -rf .data`).
   * The folder may be another process's now: nothing more may be written to it. Called from an fs
   * callback: it must not throw. @default throws the error (an uncaught exception: the process dies)
   */
  readonly onLost?: (error: Error) => void;
  /**
   * Called once when the lock is held by another process and this one starts waiting for it (up
   * to `waitMs`, `waitMs` given): a start that would otherwise say nothing for that long can say
   * why.
   */
  readonly onWait?: (waitMs: number) => void;
}

/**
 * Takes the data folder's lock; resolves with its release.
 * @throws TributaryError MISCONFIGURED when another live process holds it.
 */
export async function lockDataDir(dataDir: string, options: DataDirLockOptions = {}): Promise<() => Promise<void>> {
  const staleMs = options.staleMs ?? 10_000;
  const waitMs = options.waitMs ?? staleMs + 3_000;
  const attempts = Math.max(0, Math.ceil(waitMs / 1_000));
  const onLost =
    options.onLost ??
    ((error: Error) => {
      throw error;
    });
  const lock = (retries: number) =>
    lockfile.lock(dataDir, {
      lockfilePath: join(dataDir, 'tributary.lock'),
      stale: staleMs,
      update: 1_000,
      retries: { retries, factor: 1, minTimeout: Math.min(1_000, waitMs), maxTimeout: 1_000 },
      onCompromised: (error) => onLost(new Error(`The lock of DATA_DIR ${dataDir} was lost: another process has the folder, or it was removed`, { cause: error })),
    });
  try {
    // Once at once, so that a wait is told before it begins.
    return await lock(0).catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== 'ELOCKED' || attempts === 0) throw error;
      options.onWait?.(waitMs);
      return lock(attempts);
    });
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ELOCKED') throw error;
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `DATA_DIR ${dataDir} is in use by another Tributary process (npm start, npm run dev, npm run migrate…): stop it, give this one another DATA_DIR, or use DATABASE_URL to share one database`,
      { cause: error },
    );
  }
}
