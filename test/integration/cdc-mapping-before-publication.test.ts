/**
 * A mapping saved before its source's reader has set up the publication (`setCdcSource` returns
 * before the reader starts): the reader creates the publication with the tables mapped when it
 * looks, which may not include this one yet, and adds none later — the mapping would be accepted
 * and never deliver. Its save creates the publication with its table instead (or adds it to the
 * one the reader made first).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkSource } from '../../src/pipeline/cdc/mapping/mapping-source-check.ts';
import { parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { CONTACTS_MAPPING } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';

async function sourceWithContacts() {
  const database = await createTestDatabase();
  const pool = openTestPool(database.url);
  await pool.query('CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)');
  await pool.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
  const client = await pool.connect();
  onTestFinished(() => client.release());
  return { pool, client };
}

const tablesOf = async (pool: { query: (sql: string, values: unknown[]) => Promise<{ rows: { tablename: string }[] }> }, publication: string) =>
  (await pool.query('SELECT tablename::text AS tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1', [publication])).rows.map((row) => row.tablename);

describe('a mapping saved before the publication exists', () => {
  it('creates the publication with its table', async () => {
    const { pool, client } = await sourceWithContacts();
    const check = await checkSource(client, parseMapping(CONTACTS_MAPPING), () => 'tributary_early');
    expect(check.problems).toEqual([]);
    expect(await tablesOf(pool, 'tributary_early')).toEqual(['contacts']);
  });

  it('adds its table to the publication a reader created meanwhile without it', async () => {
    const { pool, client } = await sourceWithContacts();
    await pool.query('CREATE PUBLICATION tributary_early WITH (publish_via_partition_root = true)');
    const check = await checkSource(client, parseMapping(CONTACTS_MAPPING), () => 'tributary_early');
    expect(check.problems).toEqual([]);
    expect(await tablesOf(pool, 'tributary_early')).toEqual(['contacts']);
  });
});
