/**
 * The outbox DDL on a real Postgres for table names up to the 63 characters an identifier may
 * have: every index is created (Postgres truncates longer identifiers, and `CREATE INDEX IF NOT
 * EXISTS` would skip one whose truncated name is taken with a mere NOTICE), and running the DDL
 * again changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { indexName, outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';

describe('the outbox DDL with long table names', () => {
  it.each([20, 49, 50, 61, 63])('creates the primary key and the dead, pending and processed indexes of a %i-character table, idempotently', async (length) => {
    const db = await createTestDatabase();
    const pool = openTestPool(db.url);
    const name = 'o'.repeat(length);
    const ddl = outboxTableDdl(outboxTable(`app.${name}`));
    await pool.query('CREATE SCHEMA app');
    await pool.query(ddl);
    await pool.query(ddl);
    const { rows } = await pool.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'app' AND tablename = $1 ORDER BY indexname",
      [name],
    );
    const byRole = (where: string) => rows.filter((row) => row.indexdef.includes(where)).map((row) => row.indexname);
    expect(rows).toHaveLength(4);
    expect(byRole('WHERE (dead_reason IS NOT NULL)')).toEqual([indexName(name, 'dead_idx')]);
    expect(byRole('WHERE (processed_at IS NULL)')).toEqual([indexName(name, 'pending_idx')]);
    expect(byRole('(processed_at)')).toEqual([indexName(name, 'processed_idx')]);
  });

  it('keeps the names of tables short enough for them, and derives distinct ones of at most 63 characters otherwise', () => {
    expect(indexName('event_outbox', 'processed_idx')).toBe('event_outbox_processed_idx');
    expect(indexName('o'.repeat(49), 'processed_idx')).toBe(`${'o'.repeat(49)}_processed_idx`);
    const long = ['dead_idx', 'pending_idx', 'processed_idx'].flatMap((suffix) => [indexName('o'.repeat(63), suffix), indexName(`${'o'.repeat(62)}p`, suffix)]);
    expect(new Set(long).size).toBe(6);
    for (const name of long) expect(name.length).toBeLessThanOrEqual(63);
  });
});
