import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, gql, nextChange, saveMappingOk, setUpCdc, subscribeChanges } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { defaultReplicationNames, identifyDatabase } from '../../src/pipeline/cdc/wal/replication-names.ts';

/*
 * Tributary's publication lists the tables its mappings read, never FOR ALL TABLES: Postgres
 * refuses UPDATE and DELETE on a published table without a replica identity, so an application
 * table no mapping reads must stay writable while CDC runs, and after the source is removed.
 */

const SAVE = 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name warnings } }';

async function publishedTables(pool: { query: (sql: string) => Promise<{ rows: { pubname: string; tables: string[]; all: boolean }[] }> }) {
  const { rows } = await pool.query(
    `SELECT p.pubname, p.puballtables AS all, array(SELECT t.tablename::text FROM pg_publication_tables t WHERE t.pubname = p.pubname ORDER BY 1) AS tables FROM pg_publication p`,
  );
  return rows;
}

describe('the CDC publication', () => {
  it("lists only mapped tables, so an unmapped table without a primary key keeps accepting UPDATE and DELETE, also once the source is removed", async () => {
    const setup = await setUpCdc();
    await setup.source.query(`CREATE TABLE audit_log (at timestamptz DEFAULT now(), msg text)`);
    await setup.source.query(`INSERT INTO audit_log (msg) VALUES ('a')`);
    expect(await publishedTables(setup.source)).toEqual([expect.objectContaining({ all: false, tables: [] })]);
    await setup.source.query(`UPDATE audit_log SET msg = 'b'`);

    await saveMappingOk(setup, CONTACTS_MAPPING);
    expect((await publishedTables(setup.source))[0]?.tables).toEqual(['contacts']);
    const client = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts' });
    await waitFor(() => setup.server.stats().subscribers > 0);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Ann')`);
    expect(await nextChange(client)).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });
    await setup.source.query(`UPDATE audit_log SET msg = 'c'`);
    await setup.source.query(`DELETE FROM audit_log`);

    expect((await gql(setup.server, setup.admin, 'mutation { removeCdcSource }')).data).toEqual({ removeCdcSource: true });
    // Gone, or — while the removed reader's slot is not dropped yet (a source set again would read
    // on from it, and needs the publication as it was) — left as it was, its mapped tables only.
    expect((await publishedTables(setup.source)).every((publication) => !publication.all && !publication.tables.includes('audit_log'))).toBe(true);
    await setup.source.query(`UPDATE audit_log SET msg = 'd'`);
  });

  it('refuses an insert-only mapping of a table without a replica identity: publishing it would refuse its UPDATE and DELETE', async () => {
    const setup = await setUpCdc();
    await setup.source.query(`CREATE TABLE nopk (tenant_id text NOT NULL, code text)`);
    const body = await gql(setup.server, setup.admin, SAVE, { m: { ...CONTACTS_MAPPING, name: 'nopk', table: 'nopk', model: 'nopk', topic: 'crm.nopk-events', events: ['insert'], key: ['code'] } });
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(body.errors?.[0]?.message).toContain('publishing public.nopk, which has no replica identity, would make Postgres refuse every UPDATE and DELETE on it');
    expect((await publishedTables(setup.source))[0]?.tables).toEqual([]);
    await setup.source.query(`UPDATE nopk SET code = 'x'`);
  });

  it('uses a FOR ALL TABLES publication made before as it is, warning of the tables whose writes it breaks, and leaves it on removal', async () => {
    const database = await createTestDatabase();
    const source = openTestPool(database.url);
    await source.query(`CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)`);
    await source.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
    await source.query(`CREATE TABLE audit_log (at timestamptz DEFAULT now(), msg text)`);
    const client = await source.connect();
    const { publicationName } = defaultReplicationNames(await identifyDatabase(client).finally(() => client.release()));
    await source.query(`CREATE PUBLICATION ${publicationName} FOR ALL TABLES`);
    const logs = captureLogs();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', LOG_LEVEL: 'info' }, { logDestination: logs });
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    expect((await gql(server, admin, 'mutation($u: String!) { setCdcSource(databaseUrl: $u) { host } }', { u: database.url })).errors).toBeUndefined();
    const sourceWarning = logs.lines.find((line) => line.msg === 'CDC source set with warnings');
    expect(String(sourceWarning?.['warning'])).toContain(`publication "${publicationName}" is FOR ALL TABLES`);
    expect(String(sourceWarning?.['warning'])).toContain('public.audit_log');

    const saved = await gql(server, admin, SAVE, { m: CONTACTS_MAPPING });
    expect(saved.errors).toBeUndefined();
    const warnings = (saved.data?.['saveCdcMapping'] as { warnings: string[] }).warnings;
    expect(warnings.join('\n')).toContain('public.audit_log');
    expect(warnings.join('\n')).toContain(`DROP PUBLICATION "${publicationName}";`);

    expect((await gql(server, admin, 'mutation { removeCdcSource }')).data).toEqual({ removeCdcSource: true });
    expect(await publishedTables(source)).toEqual([expect.objectContaining({ pubname: publicationName, all: true })]);
    const left = logs.lines.find((line) => String(line.msg).startsWith('the publication of the removed CDC source is left'));
    expect(left?.['statement']).toBe(`DROP PUBLICATION "${publicationName}";`);
  });
});
