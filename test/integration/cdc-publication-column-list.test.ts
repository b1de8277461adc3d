/**
 * A mapping saved against a publication whose column list (Postgres 15+) leaves out columns,
 * through a real source Postgres (logical WAL) and the admin API. pgoutput sends such a table as if
 * it had only the listed columns, and Postgres refuses UPDATE and DELETE on a table whose list
 * lacks a replica identity column. A mapping routed by a column left out was saved and then found
 * every change unroutable (`column-missing`), delivering nothing. Its save is refused now, naming
 * the columns and one transaction that fixes the list (run here as given); a column only the
 * payload reads is a warning.
 */
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, errorOf, gql, saveMapping, setUpCdc, type CdcSetup } from '../helpers/cdc.ts';

async function publicationOf(setup: CdcSetup): Promise<string> {
  const status = await gql(setup.server, setup.admin, '{ cdcSource { status { publicationName } } }');
  return (status.data?.['cdcSource'] as { status: { publicationName: string } }).status.publicationName;
}

describe('CDC mapping save: a publication column list', () => {
  it('refuses a list without the tenant column (nor, in REPLICA IDENTITY FULL, every column) with one transaction that fixes it', async () => {
    const setup = await setUpCdc();
    const publication = await publicationOf(setup);
    await setup.source.query(`ALTER PUBLICATION ${publication} ADD TABLE contacts (id, status, name)`);

    const refused = errorOf(await saveMapping(setup, CONTACTS_MAPPING));
    expect(refused?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    const leaves = `publication "${publication}" publishes public.contacts with a column list that leaves out`;
    expect(refused?.message).toContain(`${leaves} "tenant_id" of its rows' replica identity, so Postgres refuses every UPDATE and DELETE on them.`);
    expect(refused?.message).toContain(`${leaves} "tenant_id" (used at tenantColumn), so every change would be unroutable (column-missing) and none delivered.`);
    const fix = `BEGIN; ALTER PUBLICATION "${publication}" DROP TABLE "public"."contacts"; ALTER PUBLICATION "${publication}" ADD TABLE "public"."contacts" ("id", "tenant_id", "status", "name"); COMMIT;`;
    expect(refused?.message).toContain(`Fix: run \`${fix}\``);

    await setup.source.query(fix);
    expect((await saveMapping(setup, CONTACTS_MAPPING)).errors).toBeUndefined();
  });

  it('refuses any list of a REPLICA IDENTITY FULL table with a generated column, whose fix publishes it without one and keeps its row filter', async () => {
    const setup = await setUpCdc();
    const publication = await publicationOf(setup);
    await setup.source.query('CREATE TABLE gen (id int PRIMARY KEY, tenant_id text NOT NULL, status text, doubled int GENERATED ALWAYS AS (id * 2) STORED)');
    await setup.source.query('ALTER TABLE gen REPLICA IDENTITY FULL');
    await setup.source.query(`ALTER PUBLICATION ${publication} ADD TABLE gen (id, tenant_id, status) WHERE (status <> 'hidden')`);
    const mapping = { ...CONTACTS_MAPPING, name: 'gen', table: 'gen', model: 'gen', topic: 'crm.gen-events' };

    const refused = errorOf(await saveMapping(setup, mapping));
    expect(refused?.message).toContain('REPLICA IDENTITY FULL of a table with generated columns needs every column, which no list may name');
    const fix = refused?.message.match(/Fix: run `([^`]+)`/)?.[1];
    expect(fix).toBe(`BEGIN; ALTER PUBLICATION "${publication}" DROP TABLE "public"."gen"; ALTER PUBLICATION "${publication}" ADD TABLE "public"."gen" WHERE ((status <> 'hidden'::text)); COMMIT;`);

    await setup.source.query(fix!);
    expect((await saveMapping(setup, mapping)).errors).toBeUndefined();
    // What the list broke: the application's UPDATE and DELETE go through.
    await setup.source.query("INSERT INTO gen (id, tenant_id, status) VALUES (1, 't', 'open')");
    await setup.source.query("UPDATE gen SET status = 'closed' WHERE id = 1");
    await setup.source.query('DELETE FROM gen WHERE id = 1');
  });

  it('refuses a list without a topic column, and saves one without a payload column with a warning', async () => {
    const setup = await setUpCdc();
    const publication = await publicationOf(setup);
    await setup.source.query('ALTER TABLE contacts REPLICA IDENTITY DEFAULT');
    await setup.source.query(`ALTER PUBLICATION ${publication} ADD TABLE contacts (id, tenant_id, status)`);
    const inserts = { ...CONTACTS_MAPPING, events: ['insert'] };

    const topic = errorOf(await saveMapping(setup, { ...inserts, topic: 'crm.contacts.{$row.name}' }));
    expect(topic?.message).toContain(`leaves out "name" (used at topic), so no change could build its topic and none would be published on it.`);

    const saved = await gql(setup.server, setup.admin, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name warnings } }', {
      m: { ...inserts, payload: { who: '$row.name', status: '$row.status' } },
    });
    expect(saved.errors).toBeUndefined();
    const { warnings } = saved.data?.['saveCdcMapping'] as { warnings: string[] };
    expect(warnings.filter((warning) => warning.includes('column list'))).toEqual([
      `publication "${publication}" publishes public.contacts with a column list that leaves out "name" (used at payload.who): no change carries its value, and the payload leaves it out`,
    ]);
  });
});
