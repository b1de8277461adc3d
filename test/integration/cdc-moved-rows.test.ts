/**
 * Rows an update moves to another key or tenant, through a real server: subscribers that hold the
 * row where it was get a DELETED for it, and the row arrives where it now is as CREATED, so a client
 * applying the stream ends with what `records` lists.
 */
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, gql, nextChange, saveMappingOk, setUpCdc, subscribeChanges, type CdcSetup } from '../helpers/cdc.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

const READ = { permissions: ['crm.contacts.read'] };

async function subscribed(setup: CdcSetup, tenant: string) {
  const before = setup.server.stats().subscribers;
  const client = await subscribeChanges(setup, { tenant, ...READ }, { m: 'contacts' });
  await waitFor(() => setup.server.stats().subscribers === before + 1, { message: 'the subscription is registered' });
  return client;
}

describe('CDC rows moved by an update', () => {
  it('deletes the old id and creates the new one when an update changes the primary key', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const client = await subscribed(setup, 'a');
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) VALUES (1, 'a', 'active', 'Ann')`);
    expect(await nextChange(client)).toMatchObject({ operation: 'CREATED', id: '1' });

    await setup.source.query('UPDATE contacts SET id = 2 WHERE id = 1');
    expect(await nextChange(client)).toMatchObject({ operation: 'DELETED', id: '1', record: { id: 1, tenant_id: 'a', name: 'Ann' } });
    expect(await nextChange(client)).toMatchObject({ operation: 'CREATED', id: '2', record: { id: 2, tenant_id: 'a', name: 'Ann' } });
    const listed = await gql(setup.server, await signHs256({ tenant: 'a', ...READ }), '{ records(model: "contacts") { nodes { id } } }');
    expect(listed.data).toEqual({ records: { nodes: [{ id: '2' }] } });
  });

  it("takes a row moved to another tenant off the old tenant's subscribers and gives it to the new tenant's as CREATED", async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const a = await subscribed(setup, 'a');
    const b = await subscribed(setup, 'b');
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) VALUES (1, 'a', 'active', 'Ann')`);
    expect(await nextChange(a)).toMatchObject({ operation: 'CREATED', id: '1' });

    await setup.source.query(`UPDATE contacts SET tenant_id = 'b' WHERE id = 1`);
    // A marker of tenant a after the move: what a receives before it is the move.
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) VALUES (9, 'a', 'active', 'Marker')`);
    expect(await nextChange(a)).toMatchObject({ operation: 'DELETED', id: '1', record: { tenant_id: 'a' } });
    expect(await nextChange(a)).toMatchObject({ operation: 'CREATED', id: '9' });
    expect(await nextChange(b)).toMatchObject({ operation: 'CREATED', id: '1', record: { tenant_id: 'b', name: 'Ann' } });
  });
});
