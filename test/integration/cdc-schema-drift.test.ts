/**
 * Schema drift after a mapping was saved, through a real source Postgres (logical WAL), a real
 * platform Postgres and real sockets: a DBA drops or renames a column the mapping's `when` or
 * tenant reads. A change the mapping then cannot route is never dropped silently: it is logged at
 * warn with reason `column-missing` (naming the column, never a value), counted in
 * `tributary_cdc_unroutable_rows_total`, raises `cdc.unroutable_rows`, and `cdcMappings { warnings }`
 * names the column as the table is now. A column only the payload reads is no drift: the mapping
 * topic's event goes out without the field, as the model stream's does, and nothing is counted.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, changeOf, gql, metricSample, saveMappingOk, setSourceStreaming, socketFor, sendChanges, takeMessages, type CdcSetup } from '../helpers/cdc.ts';
import { eventOf, messagesBeforePong, subscribeEvents, waitForSubscribers } from '../helpers/events.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { captureLogs, startTestServer, type LogLine } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const UNROUTABLE_METRIC = 'tributary_cdc_unroutable_rows_total';
const CHANGED = 'the table changed since the mapping was saved: ';

type DriftSetup = CdcSetup & { readonly logs: readonly LogLine[]; readonly platform: pg.Pool };

/**
 * `contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)` in REPLICA
 * IDENTITY FULL, a server on a platform Postgres of its own evaluating alerts every second (logs
 * kept), streaming it.
 */
async function setUp(): Promise<DriftSetup> {
  const database = await createTestDatabase();
  const source = openTestPool(database.url);
  await source.query('CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, status text, name text)');
  await source.query('ALTER TABLE contacts REPLICA IDENTITY FULL');
  const platformDatabase = await createTestDatabase({ migrated: true });
  const sink = captureLogs();
  const server = await startTestServer(
    { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', DATABASE_URL: platformDatabase.url, ALERTS_EVALUATE_SECONDS: '1', LOG_LEVEL: 'info' },
    { logDestination: sink },
  );
  const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
  await setSourceStreaming(server, admin, database.url);
  return { server, source, sourceUrl: database.url, admin, logs: sink.lines, platform: openTestPool(platformDatabase.url) };
}

/** Waits until `cdcMappings` lists `name` with `warnings` (read from the table now). */
async function expectListedWarnings(setup: DriftSetup, name: string, warnings: readonly string[]): Promise<void> {
  let listed: unknown;
  await waitFor(
    async () => {
      const body = await gql(setup.server, setup.admin, '{ cdcMappings { name warnings } }');
      listed = body.data?.['cdcMappings'];
      return JSON.stringify(listed) === JSON.stringify([{ name, warnings }]);
    },
    { message: `cdcMappings lists ${JSON.stringify(warnings)}` },
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}; listed last: ${JSON.stringify(listed)}`);
  });
}

/** The warn line of a change `mapping` could not route, once logged. */
async function unroutableLog(setup: DriftSetup, mapping: string): Promise<LogLine> {
  const line = await waitFor(() => setup.logs.find((entry) => entry.level === 40 && entry['mapping'] === mapping && entry['reason'] === 'column-missing'), {
    message: `the unroutable change of ${mapping} is logged`,
  });
  if (line === undefined) throw new Error('unreachable: waitFor resolves with a found line');
  return line;
}

/** The `cdc.unroutable_rows` alert of app `shop`, env `prod`, once it fires. */
async function firingAlert(setup: DriftSetup): Promise<{ state: string; message: string }> {
  const alert = await waitFor(
    async () =>
      (await setup.platform.query<{ state: string; message: string }>("SELECT state, message FROM alerts WHERE rule = 'cdc.unroutable_rows' AND app = 'shop' AND env = 'prod'"))
        .rows[0],
    { timeoutMs: 60_000, message: 'cdc.unroutable_rows fires' },
  );
  if (alert === undefined) throw new Error('unreachable: waitFor resolves with a found alert');
  return alert;
}

const ALTERS = [
  ['dropped', 'ALTER TABLE contacts DROP COLUMN status', `INSERT INTO contacts (tenant_id, name) VALUES ('a', 'Secret Name')`],
  ['renamed', 'ALTER TABLE contacts RENAME COLUMN status TO state', `INSERT INTO contacts (tenant_id, state, name) VALUES ('a', 'active', 'Secret Name')`],
] as const;

describe('CDC schema drift after a mapping was saved', () => {
  it.each(ALTERS)(
    'makes a change unroutable, not silently skipped, when the column its `when` reads was %s: logged, counted, alerted, and named in the warnings',
    { timeout: 120_000 },
    async (_how, alter, insert) => {
      const setup = await setUp();
      await saveMappingOk(setup, { ...CONTACTS_MAPPING, name: 'active-contacts', when: { eq: ['$row.status', 'active'] } });
      await expectListedWarnings(setup, 'active-contacts', []);
      const before = await metricSample(setup.server, UNROUTABLE_METRIC);

      await setup.source.query(alter);
      await setup.source.query(insert);

      await waitFor(async () => (await metricSample(setup.server, UNROUTABLE_METRIC)) === before + 1, { message: 'the change is counted unroutable' });
      const logged = await unroutableLog(setup, 'active-contacts');
      expect(logged.msg).toBe('row change not routed');
      expect(logged.err?.message).toContain('mapping active-contacts: column "status" (used at when.eq[0]) of public.contacts is not in its changes');
      expect(JSON.stringify(logged)).not.toContain('Secret Name');
      await expectListedWarnings(setup, 'active-contacts', [`${CHANGED}column "status" does not exist in public.contacts (used at when.eq[0])`]);
      expect(await firingAlert(setup)).toEqual({
        state: 'firing',
        message: '1 row change matched by a mapping could not be routed in full in the last 300 s (most often mapping "active-contacts": column-missing)',
      });
    },
  );

  it('names a renamed tenant column: the change is unroutable as column-missing, alerted, and the warnings say which column is gone', { timeout: 120_000 }, async () => {
    const setup = await setUp();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await expectListedWarnings(setup, 'contacts', []);
    const before = await metricSample(setup.server, UNROUTABLE_METRIC);

    await setup.source.query('ALTER TABLE contacts RENAME COLUMN tenant_id TO tenant_key');
    await setup.source.query(`INSERT INTO contacts (tenant_key, status, name) VALUES ('a', 'active', 'Secret Name')`);

    await waitFor(async () => (await metricSample(setup.server, UNROUTABLE_METRIC)) === before + 1, { message: 'the change is counted unroutable' });
    const logged = await unroutableLog(setup, 'contacts');
    expect(logged.err?.message).toContain('column "tenant_id" (used at tenantColumn) of public.contacts is not in its changes');
    await expectListedWarnings(setup, 'contacts', [`${CHANGED}column "tenant_id" does not exist in public.contacts (used at tenantColumn)`]);
    expect((await firingAlert(setup)).message).toContain('(most often mapping "contacts": column-missing)');
  });

  it('publishes the mapping topic event without the field when only the payload reads the dropped column, and counts nothing', { timeout: 60_000 }, async () => {
    const setup = await setUp();
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, payload: { who: '$row.name', status: '$row.status' } });
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['crm.contacts.read', 'crm.contact-events.read'] });
    sendChanges(socket, 'changes', { m: 'contacts' });
    subscribeEvents(socket, 'topic', { topic: 'crm.contact-events' });
    await waitForSubscribers(setup.server, 2);
    const before = await metricSample(setup.server, UNROUTABLE_METRIC);

    await setup.source.query('ALTER TABLE contacts DROP COLUMN name');
    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status) VALUES (1, 'a', 'active')`);

    const received = await takeMessages(socket, 2);
    const created = received.find((message) => message.id === 'changes');
    expect(changeOf(created ?? { type: 'none' })).toMatchObject({ operation: 'CREATED', id: '1', record: { id: 1, tenant_id: 'a', status: 'active' } });
    expect(eventOf(received.find((message) => message.id === 'topic') ?? { type: 'none' }).payload).toEqual({ status: 'active' });
    expect(await messagesBeforePong(socket)).toEqual([]);
    // Counted and logged, if at all, before its events were published: both are done by now.
    expect(await metricSample(setup.server, UNROUTABLE_METRIC)).toBe(before);
    expect(setup.logs.filter((entry) => entry['mapping'] === 'contacts' && entry['reason'] !== undefined)).toEqual([]);
    await expectListedWarnings(setup, 'contacts', [`${CHANGED}column "name" does not exist in public.contacts (used at payload.who)`]);
  });
});
