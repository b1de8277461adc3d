import { describe, expect, it, onTestFinished } from 'vitest';
import {
  CONTACTS_MAPPING,
  deniedChanges,
  errorOf,
  expectRefused,
  gql,
  metricSample,
  nextChange,
  saveMappingOk,
  sendChanges,
  setUpCdc,
  socketFor,
  subscribeChanges,
  type CdcSetup,
  type ChangesVariables,
} from '../helpers/cdc.ts';
import { openTestPool } from '../helpers/services.ts';
import { signHs256, type TokenClaims } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import type { RawSocket } from '../helpers/ws-client.ts';

/*
 * A model filter on a column the model's rows do not have (`{ stauts: 'eq.paid' }`) matched
 * nothing, silently and for ever — indistinguishable from a missing permission. Once the caller
 * may read the model, `changes` and `records` refuse it with BAD_USER_INPUT naming the column (and
 * the closest one the table has); a caller without the permission still learns nothing.
 */

const RECORDS = 'query($m: String!, $f: JSON) { records(model: $m, filter: $f) { nodes { id record } } }';
const READER: TokenClaims = { tenant: 'a', permissions: ['crm.contacts.read'] };

async function records(setup: CdcSetup, claims: TokenClaims, filter: unknown, model = 'contacts') {
  return gql(setup.server, await signHs256(claims), RECORDS, { m: model, f: filter });
}

/** Subscribes and resolves once the server holds the subscription (it was not refused). Sockets stay open until the test ends. */
async function acceptedChanges(setup: CdcSetup, claims: TokenClaims, filter: unknown): Promise<RawSocket> {
  const before = setup.server.stats().subscribers;
  const client = await subscribeChanges(setup, claims, { m: 'contacts', f: filter });
  await waitFor(() => setup.server.stats().subscribers === before + 1 || client.pending.length > 0, { message: 'the subscription is held or refused' });
  expect(client.pending, JSON.stringify(client.pending)).toEqual([]);
  return client;
}

/** Subscribes as a caller the server denies silently; resolves once it counted the denial, and checks nothing else came. */
async function deniedSilently(setup: CdcSetup, claims: TokenClaims, variables: ChangesVariables): Promise<void> {
  const before = await deniedChanges(setup.server);
  const client = await subscribeChanges(setup, claims, variables);
  await waitFor(async () => (await deniedChanges(setup.server)) === before + 1 || client.pending.length > 0, { message: 'the subscription is denied or refused' });
  client.send({ type: 'ping' });
  expect(await client.nextMessage()).toEqual({ type: 'pong' });
}

describe('model filters on columns the model does not have', () => {
  it('refuses changes and records with BAD_USER_INPUT naming the column and the closest one, for a caller who may read the model', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);

    const misspelt = await socketFor(setup, READER);
    sendChanges(misspelt, 'c', { m: 'contacts', f: { stauts: 'eq.active' } });
    await expectRefused(misspelt, 'c', { code: 'BAD_USER_INPUT', field: 'filter', column: 'stauts', closest: 'status' });

    const unknown = await socketFor(setup, READER);
    sendChanges(unknown, 'c', { m: 'contacts', f: { status: 'eq.active', nosuch: 'eq.1' } });
    const refused = await unknown.nextMessage();
    const error = (refused.payload as { errors: { message: string; extensions: Record<string, unknown> }[] }).errors[0]!;
    expect(error.message).toBe('Invalid filter on "nosuch": model "contacts" has no such column');
    expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter', column: 'nosuch' });
    expect(error.extensions).not.toHaveProperty('closest');

    const page = errorOf(await records(setup, READER, { stauts: 'eq.active' }));
    expect(page?.message).toBe('Invalid filter on "stauts": model "contacts" has no such column (did you mean "status"?)');
    expect(page?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter', column: 'stauts', closest: 'status' });
    // A column named in another case is another column (names are matched as the catalog stores them).
    expect(errorOf(await records(setup, READER, { Status: 'eq.active' }))?.extensions).toMatchObject({ column: 'Status', closest: 'status' });

    // Every column the table has is accepted, including the ones the mapping does not name.
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Ann')`);
    const good = await records(setup, READER, { status: 'eq.active', name: 'eq.Ann', id: 'gt.0' });
    expect(good.errors).toBeUndefined();
    expect((good.data?.['records'] as { nodes: unknown[] }).nodes).toHaveLength(1);
  });

  it('tells a caller who may not read the model nothing: silent changes and an empty page, as for any filter', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const strangers: TokenClaims[] = [{ tenant: 'a', permissions: [] }, { tenant: 'a', permissions: ['crm.deals.read'] }];

    for (const claims of strangers) await deniedSilently(setup, claims, { m: 'contacts', f: { stauts: 'eq.active' } });
    // A model nobody maps looks the same.
    await deniedSilently(setup, READER, { m: 'deals', f: { stauts: 'eq.active' } });

    const recordsDenied = await metricSample(setup.server, 'tributary_subscriptions_denied_total', { field: 'records' });
    for (const claims of strangers) {
      const body = await records(setup, claims, { stauts: 'eq.active' });
      expect(body.errors).toBeUndefined();
      expect((body.data?.['records'] as { nodes: unknown[] }).nodes).toEqual([]);
    }
    expect((await records(setup, READER, { stauts: 'eq.active' }, 'deals')).errors).toBeUndefined();
    expect(await metricSample(setup.server, 'tributary_subscriptions_denied_total', { field: 'records' })).toBe(recordsDenied + 3);
  });

  it('accepts a column added to the table after the model was first filtered, without a restart', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    // The table's columns are read (and kept) for these.
    expect((await records(setup, READER, { status: 'eq.active' })).errors).toBeUndefined();
    expect(errorOf(await records(setup, READER, { priority: 'eq.1' }))?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', column: 'priority' });
    await acceptedChanges(setup, READER, { status: 'eq.active' });

    await setup.source.query('ALTER TABLE contacts ADD COLUMN priority int');
    const page = await records(setup, READER, { priority: 'eq.1' });
    expect(page.errors, JSON.stringify(page.errors)).toBeUndefined();
    const high = await acceptedChanges(setup, READER, { priority: 'eq.1' });
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name, priority) VALUES ('a', 'lead', 'Low', 2), ('a', 'lead', 'High', 1)`);
    expect(await nextChange(high)).toMatchObject({ operation: 'CREATED', record: { name: 'High', priority: 1 } });
  });

  it('keeps a changes subscription (unchecked) while the source database cannot be reached: its stream does not need it', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const database = new URL(setup.sourceUrl).pathname.slice(1);
    const adminUrl = new URL(setup.sourceUrl);
    adminUrl.pathname = '/postgres';
    const admin = openTestPool(adminUrl.toString());
    await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS false`);
    onTestFinished(() => admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`).then(() => undefined));
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tributary-cdc-setup'`, [database]);

    await acceptedChanges(setup, READER, { nosuch: 'eq.1' });
    const active = await acceptedChanges(setup, READER, { status: 'eq.active' });
    // `records` needs the source itself: UNAVAILABLE, as without a filter.
    expect(errorOf(await records(setup, READER, { nosuch: 'eq.1' }))?.extensions).toMatchObject({ code: 'UNAVAILABLE' });

    await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Ann')`);
    expect(await nextChange(active)).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });
    expect(errorOf(await records(setup, READER, { nosuch: 'eq.1' }))?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', column: 'nosuch' });
  });
});
