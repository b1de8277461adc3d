/**
 * A live model and `subscribeModel` against a real server reading a real Postgres (CDC) whose
 * table has no REPLICA IDENTITY FULL: an update that leaves a large (TOASTed) value unchanged
 * arrives without it, and says so (`unchangedColumns`). The change handed to the application
 * lists those columns, and the live model keeps the value it holds for them.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, subscribeModel, type ModelChange, type ModelChangeEvent, type ModelRecord } from '@tributary/client';
import { CONTACTS_MAPPING, saveMappingOk, setUpCdc } from '../../../../test/helpers/cdc.ts';
import { signHs256 } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

/** About 12.8 KB of hex digits, which pglz cannot shrink under the 2 KB TOAST threshold: stored out of line. */
const LARGE = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) AS g)";
const LARGE_LENGTH = 12_800;
const READER = { tenant: 'a', permissions: ['crm.contacts.read'] };

type Contact = ModelRecord & { readonly id: number; readonly name: string; readonly notes: string };

describe('an update without a TOASTed value it left unchanged', () => {
  it('lists the column in the change (`unchangedColumns`), and the live model keeps the value it holds', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts ADD COLUMN notes text');
    await setup.source.query('ALTER TABLE contacts REPLICA IDENTITY DEFAULT');
    // Without REPLICA IDENTITY FULL a delete carries the key only, not the tenant: inserts and updates.
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, events: ['insert', 'update'] });
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name, notes) VALUES ('a', 'active', 'Ann', ${LARGE})`);

    const token = await signHs256(READER);
    const client = createClient({ url: setup.server.wsUrl, getToken: () => token });
    onTestFinished(() => client.close());
    const updates: ModelChange<Contact>[] = [];
    const model = client.liveModel<Contact>('contacts', { onUpdated: (_record, change) => void updates.push(change) });
    const streamed: ModelChangeEvent[] = [];
    const subscribers = setup.server.stats().subscribers;
    const server = subscribeModel({ url: setup.server.wsUrl, token, model: 'contacts', onChange: (change) => void streamed.push(change) });
    onTestFinished(() => server.close());
    await waitFor(() => model.isLive && model.records.length === 1 && setup.server.stats().subscribers === subscribers + 2, { timeoutMs: 20_000, message: 'live, and subscribeModel subscribed' });
    expect(model.records[0]?.notes).toHaveLength(LARGE_LENGTH);

    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE name = 'Ann'`);
    await waitFor(() => updates.length === 1 && streamed.length === 1, { timeoutMs: 15_000, message: 'the update' });
    expect(updates[0]?.unchangedColumns).toEqual(['notes']);
    expect(streamed[0]).toMatchObject({ operation: 'UPDATED', unchangedColumns: ['notes'] });
    expect(streamed[0]?.record).not.toHaveProperty('notes');
    const [held] = model.records;
    expect(held?.name).toBe('Ann B.');
    expect(held?.notes).toHaveLength(LARGE_LENGTH);

    // An update that sets the value sends it: nothing is missing.
    await setup.source.query(`UPDATE contacts SET notes = 'short now'`);
    await waitFor(() => updates.length === 2, { timeoutMs: 15_000, message: 'the second update' });
    expect(updates[1]?.unchangedColumns).toEqual([]);
    expect(model.records[0]).toMatchObject({ name: 'Ann B.', notes: 'short now' });
  });
});
