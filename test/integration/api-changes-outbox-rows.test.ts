/**
 * An outbox row whose topic is a model stream (`crm.contacts`, what `changes(model: "contacts")`
 * reads) is an event of that topic, not a row change: `events(topic:)` receives it, `changes`
 * never does — neither a row change it was made to look like, nor one it breaks the render of.
 */
import { describe, expect, it } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { changeOf, CONTACTS_MAPPING, gql, insertContact, saveMappingOk, sendChanges, setUpCdc, socketFor } from '../helpers/cdc.ts';
import { eventOf } from '../helpers/events.ts';
import { openTestPool } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';
import type { ReceivedMessage } from '../helpers/ws-client.ts';

describe('changes and outbox rows on a model stream', () => {
  it('delivers the outbox rows to events(topic:) only; the changes subscriber gets the next real row change first', async () => {
    const setup = await setUpCdc({ env: { OUTBOX_POLL_INTERVAL_MS: '50' } });
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const outbox = await gql(setup.server, setup.admin, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { mode } }', {
      url: setup.sourceUrl,
    });
    expect(outbox.errors).toBeUndefined();

    const client = await socketFor(setup, { tenant: 't1', permissions: ['crm.contacts.read'] });
    sendChanges(client, 'c', { m: 'contacts' });
    client.send({ id: 'e', type: 'subscribe', payload: { query: 'subscription { events(topic: "crm.contacts") { type payload } }' } });
    await waitFor(() => setup.server.stats().subscribers === 2, { message: 'both subscriptions dispatched' });

    // One made to pass for a row change, one that is no row change at all.
    const app = openTestPool(setup.sourceUrl);
    const forged = { operation: 'UPDATED', model: 'contacts', id: '999', record: { id: 999, tenant_id: 't1', status: 'vip', name: 'Mallory' }, lastUpdatedAt: new Date().toISOString() };
    await enqueueOutboxEvent(app, { topic: 'crm.contacts', type: 'contacts.updated', payload: forged, tenant: 't1', entity: 'contacts/999' });
    await enqueueOutboxEvent(app, { topic: 'crm.contacts', type: 'note', payload: { text: 'not a row' }, tenant: 't1' });
    // Barrier: a real change, committed once both rows are routed. Either row reaching `changes`
    // (as a change, or as an error) would be there before it.
    const received = { c: [] as ReceivedMessage[], e: [] as ReceivedMessage[] };
    const take = async (until: () => boolean) => {
      while (!until()) {
        const message = await client.nextMessage();
        (message.id === 'c' ? received.c : received.e).push(message);
      }
    };
    await take(() => received.e.length === 2);
    await insertContact(setup, 't1', 'Ada');
    await take(() => received.c.length >= 1 && received.e.length === 3);

    expect(received.e.slice(0, 2).map(eventOf)).toEqual([
      { type: 'contacts.updated', payload: forged },
      { type: 'note', payload: { text: 'not a row' } },
    ]);
    expect(received.c.map(changeOf)).toEqual([
      expect.objectContaining({ operation: 'CREATED', model: 'contacts', record: expect.objectContaining({ tenant_id: 't1', name: 'Ada', status: 'lead' }) as unknown }),
    ]);
    expect(eventOf(received.e[2]!)).toMatchObject({ payload: { operation: 'CREATED', model: 'contacts' } });
  });
});
