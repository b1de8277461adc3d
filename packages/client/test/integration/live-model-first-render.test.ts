/**
 * Against a real server reading a real Postgres (CDC): the snapshot's pages after the first leave
 * out rows changed since the first page was read (the stream brings them). A live model does not
 * show the listing until the stream brought those rows, so the first render misses no row that
 * existed, each is where key order puts it, and no callback fires for a row never shown.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type ModelRecord } from '@tributary/client';
import { CONTACTS_MAPPING, saveMappingOk, setUpCdc } from '../../../../test/helpers/cdc.ts';
import { signHs256 } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

type Contact = ModelRecord & { readonly id: number; readonly version: number };

const ROWS = 400;

describe('liveModel first render', () => {
  it('holds every row that existed, in key order, while writers update rows of later pages during the load', async () => {
    const setup = await setUpCdc();
    await setup.source.query('ALTER TABLE contacts ADD COLUMN version int NOT NULL DEFAULT 0');
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'a', 'lead', 'c' || i FROM generate_series(1, ${ROWS}) AS i`);
    const stop = new AbortController();
    onTestFinished(() => stop.abort());
    let writes = 0;
    // Rows past the first page only (the first page's rows are all in the first snapshot).
    const writers = Array.from({ length: 3 }, async (_unused, writer) => {
      for (let n = 0; !stop.signal.aborted; n += 1) {
        await setup.source.query('UPDATE contacts SET version = version + 1 WHERE id = $1', [21 + ((n * 37 + writer * 101) % (ROWS - 20))]);
        writes += 1;
      }
    });
    await waitFor(() => writes > 10, { message: 'the writers write' });

    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const client = createClient({ url: setup.server.wsUrl, getToken: () => token, pageSize: 20 });
    onTestFinished(() => client.close());
    const neverShown: number[] = [];
    const model = client.liveModel<Contact>('contacts', {
      onUpdated: (record) => {
        if (!shown.has(String(record.id))) neverShown.push(record.id);
      },
    });
    let shown: ReadonlyMap<string, Contact> = new Map();
    let firstRender: number[] | undefined;
    model.subscribe(() => {
      const snapshot = model.getSnapshot();
      if (firstRender === undefined && snapshot.records.length > 0) firstRender = snapshot.records.map((record) => record.id);
    });
    // After the store changed and the listeners ran: what the application had been shown.
    const track = model.subscribe(() => void (shown = model.getSnapshot().byId));
    await waitFor(() => model.isLive, { timeoutMs: 20_000, message: 'live' });
    const writesAtLoad = writes;
    stop.abort();
    await Promise.all(writers);
    track();

    expect(writesAtLoad).toBeGreaterThan(20);
    expect(firstRender).toEqual(Array.from({ length: ROWS }, (_unused, index) => index + 1));
    expect(neverShown).toEqual([]);
  });
});
