import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, nextChange, saveMappingOk, setUpCdc, subscribeChanges } from '../helpers/cdc.ts';
import { waitFor } from '../helpers/wait-for.ts';

/*
 * A filtered `changes` subscriber holds rows that matched its filter; a delete must reach it
 * whatever the deleted row's record says, or the row stays on its list for good.
 */

const READ = { tenant: 'a', permissions: ['crm.contacts.read'] };

describe('changes with a filter: deletes', () => {
  it('delivers a soft delete that also moves the row out of the filter as DELETED, before later changes', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts ADD COLUMN deleted_at timestamptz');
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, softDeleteColumn: 'deleted_at' });
    const subscribers = setup.server.stats().subscribers;
    const active = await subscribeChanges(setup, READ, { m: 'contacts', f: { status: 'eq.active' } });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Ann')`);
    const created = await nextChange(active);
    expect(created).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });
    // Archiving: a soft delete and a status outside the filter, in one statement.
    await setup.source.query(`UPDATE contacts SET deleted_at = now(), status = 'archived' WHERE name = 'Ann'`);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Marker')`);

    expect(await nextChange(active)).toMatchObject({ operation: 'DELETED', id: created.id, record: { name: 'Ann', status: 'archived' } });
    expect(await nextChange(active)).toMatchObject({ operation: 'CREATED', record: { name: 'Marker' } });
  });

  it('delivers a hard delete of a row outside the filter too (the subscriber ignores an id it does not hold), and nothing of another tenant', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const subscribers = setup.server.stats().subscribers;
    const active = await subscribeChanges(setup, READ, { m: 'contacts', f: { status: 'eq.active' } });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Lee'), ('b', 'active', 'Bob')`);
    await setup.source.query(`DELETE FROM contacts WHERE name IN ('Lee', 'Bob')`);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Marker')`);

    expect(await nextChange(active)).toMatchObject({ operation: 'DELETED', record: { name: 'Lee' } });
    expect(await nextChange(active)).toMatchObject({ operation: 'CREATED', record: { name: 'Marker' } });
  });
});
