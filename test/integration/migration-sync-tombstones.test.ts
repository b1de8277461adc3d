/**
 * Migration 0030: tombstones written before deletions stored no content are cleared of it — the
 * row keeps its revision (a re-creation continues from it), live documents are left as they are.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase } from '../helpers/index.ts';
import { migrateBefore } from '../helpers/migrate-before.ts';

const logger = createLogger({ level: 'silent' });
const CLEARING = '0030_sync_tombstones_without_content.sql';

describe('migration 0030 (tombstones without content)', () => {
  it('clears the content of tombstones written before it, and leaves live documents and revisions alone', async () => {
    const database = await createTestDatabase();
    const db = createPostgresDatabase({ url: database.url, logger });
    onTestFinished(async () => {
      await db.close();
      await database.dispose();
    });
    // The schema as it was before the migration, with a tombstone of that time.
    await migrateBefore(db, CLEARING);
    await db.query(
      `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data, deleted) VALUES
         ('a', 'e', '', 'people', 'gone', 4, '{"ssn": "123-45-6789"}', true),
         ('a', 'e', '', 'people', 'here', 2, '{"name": "Ada"}', false)`,
    );

    expect((await migrate(db, { logger })).applied).toContain(CLEARING);
    const { rows } = await db.query<{ id: string; revision: number; data: unknown; deleted: boolean }>(
      'SELECT id, revision, data, deleted FROM sync_documents ORDER BY id',
    );
    expect(rows).toEqual([
      { id: 'gone', revision: 4, data: {}, deleted: true },
      { id: 'here', revision: 2, data: { name: 'Ada' }, deleted: false },
    ]);
  });
});
