/**
 * A PGlite data folder initialised once per run, copied for each embedded server a test starts.
 * A fresh folder (or `memory://`) costs PGlite's initdb, ~7 s of WebAssembly a start; a copy of an
 * initialised one starts in ~1 s. The copy is the same as what a first start leaves behind before
 * migrating (`PGlite.create`, as `src/db/embedded.ts` calls it): the server still applies every
 * migration itself. Tests of a first start on an empty folder make their own.
 */
import { PGlite } from '@electric-sql/pglite';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';

/** Initialises the template in a folder of its own (global setup); resolves with the folder and its removal. */
export async function createPgliteTemplate(): Promise<{ readonly dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-pglite-template-'));
  const pglite = await PGlite.create(dir);
  await pglite.close();
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** Copies the run's template into `target` (an empty folder, or none yet). */
export async function copyPgliteTemplate(target: string): Promise<void> {
  await cp(inject('pgliteTemplate'), target, { recursive: true });
}

/** A new temporary folder holding a copy of the run's template; the caller removes it. */
export async function pgliteDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-data-'));
  await copyPgliteTemplate(dir);
  return dir;
}
