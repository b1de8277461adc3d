/**
 * A mapping saved against a publication whose column list (Postgres 15+) leaves out columns it
 * reads, through a real source Postgres (logical WAL) and the admin API. pgoutput sends such a
 * table as if it had only the listed columns: a mapping routed by a column left out was saved and
 * then found every change unroutable (`column-missing`), delivering nothing. Its save is refused
 * now, naming the columns and the fix; a column only the payload reads is a warning.
 */
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, errorOf, gql, saveMapping, setUpCdc } from '../helpers/cdc.ts';

describe('CDC mapping save: a publication column list', () => {
  it('refuses a mapping whose tenant column the list leaves out, and warns of a payload column it leaves out', async () => {
    const setup = await setUpCdc();
    const status = await gql(setup.server, setup.admin, '{ cdcSource { status { publicationName } } }');
    const publication = (status.data?.['cdcSource'] as { status: { publicationName: string } }).status.publicationName;
    await setup.source.query(`ALTER PUBLICATION ${publication} ADD TABLE contacts (id, status, name)`);

    const refused = await saveMapping(setup, CONTACTS_MAPPING);
    expect(errorOf(refused)?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    expect(errorOf(refused)?.message).toContain(`publication "${publication}" publishes public.contacts with a column list that leaves out "tenant_id" (used at tenantColumn)`);
    expect(errorOf(refused)?.message).toContain('every change would be unroutable (column-missing)');

    await setup.source.query(`ALTER PUBLICATION ${publication} DROP TABLE contacts`);
    await setup.source.query(`ALTER PUBLICATION ${publication} ADD TABLE contacts (id, tenant_id, status)`);
    const saved = await gql(setup.server, setup.admin, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name warnings } }', {
      m: { ...CONTACTS_MAPPING, payload: { who: '$row.name', status: '$row.status' } },
    });
    expect(saved.errors).toBeUndefined();
    const { warnings } = saved.data?.['saveCdcMapping'] as { warnings: string[] };
    expect(warnings.filter((warning) => warning.includes('column list'))).toEqual([
      `publication "${publication}" publishes public.contacts with a column list that leaves out "name" (used at payload.who): ` +
        "no change carries its value (the payload leaves it out; a topic placeholder without a value costs that change's event)",
    ]);
  });
});
