/**
 * examples/node-service against a real server with Postgres CDC: the mirror loads the tenant's
 * contacts (the snapshot), then applies each change of `contacts` after it, only the token's tenant.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ModelChange } from '@tributary/client';
import { startContactsMirror, type Contact } from '../../examples/node-service/contacts-mirror.ts';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('Node service example (a mirror of the contacts)', () => {
  it('mirrors every change of its tenant’s contacts, in order', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const subscribers = setup.server.stats().subscribers;
    const applied: ModelChange<Contact>[] = [];
    const mirror = startContactsMirror({ url: setup.server.wsUrl, token: () => token, onApplied: (change) => void applied.push(change) });
    onTestFinished(() => mirror.close());
    await mirror.ready;
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the service subscribed' });

    await insertContact(setup, 'a', 'Ann');
    await insertContact(setup, 'b', 'Other tenant');
    await insertContact(setup, 'a', 'Bob');
    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE name = 'Ann'`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Bob'`);
    await waitFor(() => applied.length === 4, { timeoutMs: 15_000, message: 'four changes' });
    expect(applied.map((change) => change.operation)).toEqual(['CREATED', 'CREATED', 'UPDATED', 'DELETED']);
    expect([...mirror.contacts.values()].map((contact) => contact.name)).toEqual(['Ann B.']);
  });

  it('holds the contacts the tenant had before it started, then the changes after them', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'a', 'active', 'Contact ' || n FROM generate_series(1, 10) AS n`);
    await insertContact(setup, 'b', 'Other tenant');
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const applied: ModelChange<Contact>[] = [];
    const mirror = startContactsMirror({ url: setup.server.wsUrl, token: () => token, onApplied: (change) => void applied.push(change) });
    onTestFinished(() => mirror.close());

    await mirror.ready;
    expect(mirror.contacts.size).toBe(10);
    // A change committed right after the snapshot comes through the stream joined at its cursor.
    await insertContact(setup, 'a', 'Contact 11');
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Contact 1'`);
    await waitFor(() => applied.length === 2, { timeoutMs: 15_000, message: 'two changes after the snapshot' });
    expect(applied.map((change) => change.operation)).toEqual(['CREATED', 'DELETED']);
    expect(new Set([...mirror.contacts.values()].map((contact) => contact.name))).toEqual(new Set(Array.from({ length: 10 }, (_, index) => `Contact ${index + 2}`)));
  });
});
