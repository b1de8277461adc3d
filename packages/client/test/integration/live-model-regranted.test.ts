/**
 * Against a real server reading a real Postgres (CDC): the same user's next token reaches the
 * server on a NEW socket (`reconnect()`, a network drop, a deploy) with other permissions than the
 * snapshot was read under. The server answers a resumed `changes(after:)` it may no longer read
 * with silence, so a model that only resumed would keep the rows, `live`, and never hear of them
 * again: it reads its snapshot again instead — empty when the model may not be read.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type ModelRecord } from '@tributary/client';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../../../../test/helpers/cdc.ts';
import { signHs256, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const READER: TokenClaims = { sub: 'ann', tenant: 'a', permissions: ['crm.contacts.read'] };
/** The same user and tenant, the model's permission taken away. */
const NO_READ: TokenClaims = { sub: 'ann', tenant: 'a', permissions: ['orders.read'] };

type Contact = ModelRecord & { readonly name: string };

describe('liveModel on a new socket whose token reads other things', () => {
  it('drops the rows when the permission was removed before a reconnect, and brings them back when it returns', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'ann');
    let claims = READER;
    const client = createClient({ url: setup.server.wsUrl, getToken: () => signHs256(claims), backoff: { initialMs: 50, maxMs: 200 } });
    onTestFinished(() => client.close());
    const model = client.liveModel<Contact>('contacts');
    await waitFor(() => model.isLive && model.records.length === 1, { timeoutMs: 20_000, message: 'live with the row' });
    const firstRead = model.lastUpdatedAt;

    claims = NO_READ;
    client.reconnect();
    await waitFor(() => model.isLive && model.records.length === 0, { timeoutMs: 20_000, message: 'live, the row dropped' });
    expect(model.error).toBeNull();
    expect(model.getSnapshot().byId.size).toBe(0);
    // What the new token may not read is not delivered either.
    await insertContact(setup, 'a', 'bob');

    claims = READER;
    client.reconnect();
    await waitFor(() => model.isLive && model.records.length === 2, { timeoutMs: 20_000, message: 'live with both rows again' });
    expect(model.records.map((record) => record.name).sort()).toEqual(['ann', 'bob']);
    expect(firstRead).not.toBeNull();
  });

  it('resumes without reading the snapshot again when only the socket changed', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'ann');
    const client = createClient({ url: setup.server.wsUrl, getToken: () => signHs256(READER), backoff: { initialMs: 50, maxMs: 200 } });
    onTestFinished(() => client.close());
    const model = client.liveModel<Contact>('contacts');
    await waitFor(() => model.isLive && model.records.length === 1, { timeoutMs: 20_000, message: 'live with the row' });
    const statuses: string[] = [];
    model.subscribe(() => void statuses.push(model.status));

    client.reconnect();
    await insertContact(setup, 'a', 'bob');
    await waitFor(() => model.isLive && model.records.length === 2, { timeoutMs: 20_000, message: 'the insert after the reconnect' });
    // A snapshot read again would pass through `resyncing`.
    expect(statuses).not.toContain('resyncing');
  });
});
