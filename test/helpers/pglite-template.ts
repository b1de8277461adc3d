/**
 * PGlite data folders initialised once per run, copied for each embedded server a test starts.
 * A fresh folder (or `memory://`) costs PGlite's initdb, ~7 s of WebAssembly a start; a copy of an
 * initialised one starts in ~1 s. The plain copy is the same as what a first start leaves behind
 * before migrating (`PGlite.create`, as `src/db/embedded.ts` calls it): the server still applies
 * every migration itself. The migrated copy (`{ migrated: true }`) is what a server leaves behind
 * once it has migrated (as `createTestDatabase({ migrated: true })` is for Postgres): a server
 * started on it finds nothing to apply — 1–3 s less of WebAssembly a start — for tests of anything
 * but the migrations. Tests of a first start on an empty folder make their own.
 */
import { PGlite } from '@electric-sql/pglite';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createLogger } from '../../src/logger.ts';

/** Initialises the template in a folder of its own (global setup); resolves with the folder and its removal. */
export async function createPgliteTemplate(): Promise<{ readonly dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-pglite-template-'));
  const pglite = await PGlite.create(dir);
  await pglite.close();
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A copy of the initialised template `from` with every migration applied, as the server applies
 * them (global setup); resolves with the folder and its removal.
 */
export async function createMigratedPgliteTemplate(from: string): Promise<{ readonly dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-pglite-migrated-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    await cp(from, dir, { recursive: true });
    const logger = createLogger({ level: 'silent' });
    // Through the server's own opening: its data-folder lock is taken and given back (the lock's
    // folder goes with it), so a copy holds only the database.
    const db = await createEmbeddedDatabase({ dataDir: dir });
    try {
      await migrate(db, { logger });
    } finally {
      await db.close();
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return { dir, dispose };
}

export interface PgliteCopyOptions {
  /** Copy the migrated template (every migration applied) instead of the initialised one. @default false */
  readonly migrated?: boolean;
}

/** Copies the run's template into `target` (an empty folder, or none yet). */
export async function copyPgliteTemplate(target: string, options: PgliteCopyOptions = {}): Promise<void> {
  await cp(inject(options.migrated === true ? 'pgliteMigratedTemplate' : 'pgliteTemplate'), target, { recursive: true });
}

/** A new temporary folder holding a copy of the run's template; the caller removes it. */
export async function pgliteDataDir(options: PgliteCopyOptions = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-data-'));
  await copyPgliteTemplate(dir, options);
  return dir;
}
