/**
 * examples/node-service against a real server with Postgres CDC: `subscribeModel` hands each
 * change of `contacts` to the mirror's handler, in order, only the token's tenant.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ModelChangeEvent } from '@tributary/client';
import { startContactsMirror } from '../../examples/node-service/contacts-mirror.ts';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('Node service example (subscribeModel)', () => {
  it('mirrors every change of its tenant’s contacts, in order', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const subscribers = setup.server.stats().subscribers;
    const applied: ModelChangeEvent[] = [];
    const mirror = startContactsMirror({ url: setup.server.wsUrl, token: () => token, onApplied: (change) => void applied.push(change) });
    onTestFinished(async () => {
      mirror.subscription.close();
      await mirror.subscription.closed;
    });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the service subscribed' });

    await insertContact(setup, 'a', 'Ann');
    await insertContact(setup, 'b', 'Other tenant');
    await insertContact(setup, 'a', 'Bob');
    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE name = 'Ann'`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Bob'`);
    await waitFor(() => applied.length === 4, { timeoutMs: 15_000, message: 'four changes' });
    expect(applied.map((change) => change.operation)).toEqual(['CREATED', 'CREATED', 'UPDATED', 'DELETED']);
    expect([...mirror.names.values()]).toEqual(['Ann B.']);
  });
});
