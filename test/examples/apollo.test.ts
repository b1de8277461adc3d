/**
 * examples/apollo against a real server with Postgres CDC: Apollo Client's split link sends the
 * `records` query over HTTP and the `changes` subscription over graphql-ws; after RESYNC_REQUIRED
 * (a TRUNCATE) the example lists the contacts again and follows from the new listing.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApolloClient, watchContacts, type ContactChange } from '../../examples/apollo/contacts.ts';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** The server's `extensions.code` of the first GraphQL error Apollo reports (CombinedGraphQLErrors). */
function codeOf(error: unknown): unknown {
  return (error as { errors?: readonly { extensions?: { code?: unknown } }[] }).errors?.[0]?.extensions?.code;
}

describe('Apollo Client example', () => {
  it('reads the contacts over HTTP, then receives the changes after them over graphql-ws', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'Ann', 'active');
    await insertContact(setup, 'a', 'Lead', 'lead');
    await insertContact(setup, 'b', 'Other tenant', 'active');
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const apollo = createApolloClient({ httpUrl: setup.server.graphqlUrl, wsUrl: setup.server.wsUrl, token });
    onTestFinished(() => apollo.close());
    const subscribers = setup.server.stats().subscribers;

    const changes: ContactChange[] = [];
    const watch = await watchContacts(apollo.client, { status: 'eq.active' }, (change) => void changes.push(change));
    onTestFinished(() => watch.stop());
    expect([...watch.contacts.values()].map((contact) => contact.name)).toEqual(['Ann']);
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'Apollo subscribed over the socket' });

    await insertContact(setup, 'a', 'Bob', 'active');
    await insertContact(setup, 'a', 'Another lead', 'lead');
    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE name = 'Ann'`);
    await waitFor(() => changes.length === 2, { timeoutMs: 15_000, message: 'two changes' });
    expect(changes.map((change) => [change.operation, change.record?.name])).toEqual([
      ['CREATED', 'Bob'],
      ['UPDATED', 'Ann B.'],
    ]);
    expect([...watch.contacts.values()].map((contact) => contact.name)).toEqual(['Ann B.', 'Bob']);

    // Bob leaves the filter: the server says LEFT, and the list drops him.
    await setup.source.query(`UPDATE contacts SET status = 'lead' WHERE name = 'Bob'`);
    await waitFor(() => changes.length === 3, { timeoutMs: 15_000, message: 'the row left the filter' });
    expect(changes[2]).toMatchObject({ operation: 'LEFT', record: null });
    expect([...watch.contacts.values()].map((contact) => contact.name)).toEqual(['Ann B.']);
  });

  it('holds every contact of a model larger than one page of records, then follows its changes', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    // 150 rows: more than the server's default page (100), so a listing that ignores hasNextPage holds 100.
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'a', 'active', 'Contact ' || n FROM generate_series(1, 150) AS n`);
    await insertContact(setup, 'b', 'Other tenant', 'active');
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const apollo = createApolloClient({ httpUrl: setup.server.graphqlUrl, wsUrl: setup.server.wsUrl, token });
    onTestFinished(() => apollo.close());
    const subscribers = setup.server.stats().subscribers;

    const changes: ContactChange[] = [];
    const watch = await watchContacts(apollo.client, null, (change) => void changes.push(change));
    onTestFinished(() => watch.stop());
    expect(watch.contacts.size).toBe(150);
    expect(new Set([...watch.contacts.values()].map((contact) => contact.name))).toEqual(new Set(Array.from({ length: 150 }, (_, index) => `Contact ${index + 1}`)));
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'subscribed over the socket' });

    // The stream joins at the listing's cursor (not a page's endCursor): the next change arrives, once.
    await insertContact(setup, 'a', 'Contact 151', 'active');
    await waitFor(() => changes.length === 1, { timeoutMs: 15_000, message: 'the change after the listing' });
    expect(changes.map((change) => [change.operation, change.record?.name])).toEqual([['CREATED', 'Contact 151']]);
    expect(watch.contacts.size).toBe(151);
  });

  it('after a TRUNCATE (RESYNC_REQUIRED) says so, lists the contacts again and follows from there: it holds exactly the table’s rows, each change once', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'Ann', 'active');
    await insertContact(setup, 'a', 'Bob', 'active');
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const apollo = createApolloClient({ httpUrl: setup.server.graphqlUrl, wsUrl: setup.server.wsUrl, token });
    onTestFinished(() => apollo.close());
    const subscribers = setup.server.stats().subscribers;
    const tableNames = async () => (await setup.source.query<{ name: string }>(`SELECT name FROM contacts WHERE tenant_id = 'a' ORDER BY id`)).rows.map((row) => row.name);
    const heldNames = () => [...watch.contacts.values()].map((contact) => contact.name).sort();

    const changes: ContactChange[] = [];
    const errors: unknown[] = [];
    const watch = await watchContacts(apollo.client, null, (change) => void changes.push(change), { onError: (error) => void errors.push(error) });
    onTestFinished(() => watch.stop());
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'subscribed over the socket' });
    await insertContact(setup, 'a', 'Cy', 'active');
    await waitFor(() => changes.length === 1, { timeoutMs: 15_000, message: 'the change before the TRUNCATE' });
    expect(heldNames()).toEqual(['Ann', 'Bob', 'Cy']);

    await setup.source.query('TRUNCATE contacts');
    await insertContact(setup, 'a', 'Dee', 'active');
    await waitFor(async () => JSON.stringify(heldNames()) === JSON.stringify(await tableNames()), { timeoutMs: 20_000, message: 'the rows of the table after the TRUNCATE' });
    expect(heldNames()).toEqual(['Dee']);
    // Told once, with the server's code; the rows were not kept as if nothing had happened.
    expect(errors.map(codeOf)).toEqual(['RESYNC_REQUIRED']);

    // Followed from the new listing: the next change arrives, once, and the rows stay the table's.
    const before = changes.length;
    await insertContact(setup, 'a', 'Eve', 'active');
    await waitFor(async () => JSON.stringify(heldNames()) === JSON.stringify(await tableNames()) && heldNames().includes('Eve'), { timeoutMs: 15_000, message: 'the change after the new listing' });
    await insertContact(setup, 'a', 'Fay', 'active');
    await waitFor(() => heldNames().includes('Fay'), { timeoutMs: 15_000, message: 'one more change' });
    expect(changes.slice(before).map((change) => [change.operation, change.record?.name])).toEqual([
      ['CREATED', 'Eve'],
      ['CREATED', 'Fay'],
    ]);
    expect(new Set(changes.map((change) => change.eventId)).size).toBe(changes.length);
    expect(heldNames()).toEqual(['Dee', 'Eve', 'Fay']);
  });
});
