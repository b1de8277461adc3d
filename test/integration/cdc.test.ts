import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, nextChange, saveMapping, setUpCdc, subscribeChanges } from '../helpers/cdc.ts';
import { waitFor } from '../helpers/wait-for.ts';

/*
 * Database CDC end to end: a source database of its own (logical WAL on the shared cluster), a
 * server with its own slot and publication, mappings saved over GraphQL, `changes` subscribers.
 */

describe('database CDC', () => {
  it('turns inserts, updates and deletes into model changes for the right tenant, filtered on the server', async () => {
    const setup = await setUpCdc();
    expect((await saveMapping(setup, CONTACTS_MAPPING)).errors).toBeUndefined();
    const subscribers = setup.server.stats().subscribers;
    const tenantA = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts' });
    const activeOfA = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts', f: { status: 'eq.active' } });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2);

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('b', 'active', 'Bob')`);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'lead', 'Ann')`);
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Ann'`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Ann'`);

    const created = await nextChange(tenantA);
    expect(created).toMatchObject({ operation: 'CREATED', model: 'contacts', record: { tenant_id: 'a', status: 'lead', name: 'Ann' } });
    expect(created.id).toBe(String(created.record?.['id']));
    expect(await nextChange(tenantA)).toMatchObject({ operation: 'UPDATED', id: created.id, record: { status: 'active' } });
    expect(await nextChange(tenantA)).toMatchObject({ operation: 'DELETED', id: created.id, record: { name: 'Ann' } });

    // The filtered one sees the update (status active) and the delete (the old row is active), not the lead insert.
    expect(await nextChange(activeOfA)).toMatchObject({ operation: 'UPDATED', id: created.id });
    expect(await nextChange(activeOfA)).toMatchObject({ operation: 'DELETED', id: created.id });
    // Nothing of tenant b reached tenant a.
    tenantA.send({ type: 'ping' });
    expect(await tenantA.nextMessage()).toEqual({ type: 'pong' });
  });

  it('refuses a tenant-routed delete mapping on a table without REPLICA IDENTITY FULL, saying how to fix it', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts REPLICA IDENTITY DEFAULT');
    const refused = await saveMapping(setup, CONTACTS_MAPPING);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(refused.errors?.[0]?.message).toContain('REPLICA IDENTITY FULL');
  });
});
