/**
 * A platform database as an earlier version left it: every migration before `first` applied, none
 * from it on — for the tests of what a migration does to data stored before it. The folder of
 * earlier migrations is removed when the test finishes.
 */
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/db/migrations.ts';
import { createLogger } from '../../src/logger.ts';

/** Applies to `db` the migrations whose file names sort before `first` (a name or a prefix: `'0036'`). */
export async function migrateBefore(db: Database, first: string): Promise<void> {
  const earlier = await mkdtemp(join(tmpdir(), 'tributary-migrations-'));
  onTestFinished(() => rm(earlier, { recursive: true, force: true }));
  for (const name of await readdir(MIGRATIONS_DIR)) if (name < first) await cp(join(MIGRATIONS_DIR, name), join(earlier, name));
  await migrate(db, { logger: createLogger({ level: 'silent' }), directory: earlier });
}
