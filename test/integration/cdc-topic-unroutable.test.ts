/**
 * A row whose mapping topic cannot be built (a templated topic's placeholder NULL or empty), through
 * a real Postgres (logical WAL) and real sockets: the model stream, which needs only the row's
 * tenant and key, still gets every change of it — `changes` and `records` agree — while the mapping
 * topic loses that change's event alone, counted in `tributary_cdc_unroutable_rows_total`.
 *
 * "Nothing arrived" is proven as in cdc-delivery: a later change reached the socket first, then
 * `ping` is answered by `pong` with nothing before it (the server writes a socket's frames in order).
 */
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, changeOf, gql, metricSample, saveMappingOk, sendChanges, setUpCdc, socketFor, takeMessages } from '../helpers/cdc.ts';
import { eventOf, messagesBeforePong, subscribeEvents, waitForSubscribers } from '../helpers/events.ts';
import { signHs256 } from '../helpers/tokens.ts';
import type { ReceivedMessage } from '../helpers/ws-client.ts';

const UNROUTABLE_METRIC = 'tributary_cdc_unroutable_rows_total';
/** The README's example mapping shape: the topic names the row's status. */
const BY_STATUS = { ...CONTACTS_MAPPING, name: 'by-status', topic: 'crm.contacts.{$row.status}' };
const READ = { permissions: ['crm.contacts.read'] };

/** The messages of a socket's `changes` (`changes`) and mapping topic subscriptions, apart. */
function split(messages: readonly ReceivedMessage[]) {
  return {
    changes: messages.filter((message) => message.id === 'changes').map(changeOf),
    topics: messages.filter((message) => message.id !== 'changes').map((message) => [message.id, eventOf(message)] as const),
  };
}

describe('CDC mapping topic that cannot be built', () => {
  it('still delivers the row on changes when its topic placeholder is NULL or empty, and leaves out only the topic event, counted', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, BY_STATUS);
    const socket = await socketFor(setup, { tenant: 'a', ...READ });
    sendChanges(socket, 'changes', { m: 'contacts' });
    // Where a NULL would land were it printed as text, beside the topic the row reaches at the end.
    for (const status of ['active', 'null', 'lead']) subscribeEvents(socket, status, { topic: `crm.contacts.${status}` });
    await waitForSubscribers(setup.server, 4);
    const unroutableBefore = await metricSample(setup.server, UNROUTABLE_METRIC);

    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) VALUES (1, 'a', NULL, 'Nil')`);
    await setup.source.query(`UPDATE contacts SET name = 'Nilla' WHERE id = 1`);
    await setup.source.query(`UPDATE contacts SET status = '' WHERE id = 1`);
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE id = 1`);

    // Four changes on the model stream, one topic event (the last update): five messages, then nothing.
    const { changes, topics } = split(await takeMessages(socket, 5));
    expect(changes.map((change) => [change.operation, change.id, change.record?.['name'], change.record?.['status']])).toEqual([
      ['CREATED', '1', 'Nil', null],
      ['UPDATED', '1', 'Nilla', null],
      ['UPDATED', '1', 'Nilla', ''],
      ['UPDATED', '1', 'Nilla', 'active'],
    ]);
    expect(topics.map(([id, event]) => [id, event.topic, event.type, event.payload['status']])).toEqual([
      ['active', 'crm.contacts.active', 'contacts.updated', 'active'],
    ]);
    expect(await messagesBeforePong(socket)).toEqual([]);
    expect(await metricSample(setup.server, UNROUTABLE_METRIC)).toBe(unroutableBefore + 3);
    // What a client following `changes` holds is what `records` lists.
    const listed = await gql(setup.server, await signHs256({ tenant: 'a', ...READ }), '{ records(model: "contacts") { nodes { id record } } }');
    expect(listed.data).toEqual({ records: { nodes: [{ id: '1', record: { id: 1, tenant_id: 'a', status: 'active', name: 'Nilla' } }] } });
  });

  it('moves a row to another tenant on changes while its topic cannot be built: DELETED where it was, CREATED where it is', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, BY_STATUS);
    const a = await socketFor(setup, { tenant: 'a', ...READ });
    const b = await socketFor(setup, { tenant: 'b', ...READ });
    for (const socket of [a, b]) sendChanges(socket, 'changes', { m: 'contacts' });
    subscribeEvents(b, 'null', { topic: 'crm.contacts.null' });
    await waitForSubscribers(setup.server, 3);
    const unroutableBefore = await metricSample(setup.server, UNROUTABLE_METRIC);

    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) VALUES (1, 'a', NULL, 'Nil')`);
    await setup.source.query(`UPDATE contacts SET tenant_id = 'b' WHERE id = 1`);

    expect((await takeMessages(a, 2)).map(changeOf).map((change) => [change.operation, change.id, change.record?.['tenant_id']])).toEqual([
      ['CREATED', '1', 'a'],
      ['DELETED', '1', 'a'],
    ]);
    expect((await takeMessages(b, 1)).map(changeOf).map((change) => [change.operation, change.id, change.record?.['tenant_id']])).toEqual([
      ['CREATED', '1', 'b'],
    ]);
    for (const socket of [a, b]) expect(await messagesBeforePong(socket)).toEqual([]);
    expect(await metricSample(setup.server, UNROUTABLE_METRIC)).toBe(unroutableBefore + 2);
  });
});
