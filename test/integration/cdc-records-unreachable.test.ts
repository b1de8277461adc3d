import { describe, expect, it, onTestFinished } from 'vitest';
import { isTributaryError } from '../../src/errors.ts';
import { parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { readModelRecords } from '../../src/pipeline/cdc/model-records.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';
import { CONTACTS_MAPPING, errorOf, gql, saveMappingOk, setUpCdc, type CdcSetup } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

/*
 * `records` while its source database is away: UNAVAILABLE, which clients retry (the SDK's live
 * models give up on any other code), never INTERNAL_SERVER_ERROR. A source URL the database refuses
 * for good (its credentials, a database that is gone) is MISCONFIGURED instead: no retry helps.
 */

const RECORDS = '{ records(model: "contacts") { nodes { id } cursor } }';

/** A pool on the cluster's `postgres` database, to administer the source database from outside it. */
function adminPool(setup: CdcSetup) {
  const url = new URL(setup.sourceUrl);
  url.pathname = '/postgres';
  return openTestPool(url.toString());
}

describe('records while the source database is unreachable', () => {
  it('answers UNAVAILABLE with a readable message while the source database refuses connections, and rows again once it accepts them', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'Ann')`);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    expect((await gql(setup.server, token, RECORDS)).errors).toBeUndefined();

    const database = new URL(setup.sourceUrl).pathname.slice(1);
    const admin = adminPool(setup);
    await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS false`);
    onTestFinished(() => admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`).then(() => undefined));
    // The pooled connections go too: the next page needs a new one, which is refused.
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tributary-cdc-setup'`, [database]);

    const refused = errorOf(await gql(setup.server, token, RECORDS));
    expect(refused?.extensions?.['code']).toBe('UNAVAILABLE');
    expect(refused?.message).toBe("The model's source database cannot be reached right now; retry shortly");

    await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`);
    const again = await gql(setup.server, token, RECORDS);
    expect(again.errors).toBeUndefined();
    expect((again.data?.['records'] as { nodes: unknown[] }).nodes).toHaveLength(1);
  });

  it('answers UNAVAILABLE when the connection reading the page is terminated (a source restarting)', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const database = new URL(setup.sourceUrl).pathname.slice(1);
    const admin = adminPool(setup);

    // Hold the page's statement on a lock, so its backend is known to be busy with it when it is terminated.
    const locker = await setup.source.connect();
    onTestFinished(() => locker.release(true));
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE');
    const answer = gql(setup.server, token, RECORDS);
    const reader = await waitFor(
      async () =>
        (
          await admin.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tributary-cdc-setup' AND wait_event_type = 'Lock'`,
            [database],
          )
        ).rows[0]?.pid,
      { message: 'the page read waits on the lock' },
    );
    await admin.query('SELECT pg_terminate_backend($1)', [reader]);
    const lost = errorOf(await answer);
    await locker.query('ROLLBACK');
    expect(lost?.extensions?.['code']).toBe('UNAVAILABLE');
  });
});

/** What `readModelRecords` throws for a first page read over `url`. */
async function recordsErrorOver(url: string): Promise<unknown> {
  const connections = createSourceConnections(url);
  onTestFinished(() => connections.dispose());
  return readModelRecords(
    {
      source: { mapping: parseMapping(CONTACTS_MAPPING), connections, sourceId: 'src' },
      tenant: 'a',
      filter: parseModelFilter(undefined),
      first: 10,
      after: undefined,
      streamHead: () => Promise.resolve('0'),
    },
    { statementTimeoutMs: 5000 },
  ).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('records over a source URL the database refuses for good', () => {
  it('answers MISCONFIGURED, not UNAVAILABLE, for a database that does not exist', async () => {
    const url = new URL((await createTestDatabase()).url);
    url.pathname = `/${uniqueName('gone')}`;
    const error = await recordsErrorOver(url.toString());
    expect(isTributaryError(error) && { code: error.code, message: error.message, details: error.details }).toEqual({
      code: 'MISCONFIGURED',
      message: "The database named by the model's source URL does not exist; an administrator must correct the CDC source (setCdcSource)",
      details: { reason: 'source-database-missing' },
    });
    expect((error as Error).cause).toMatchObject({ code: '3D000' });
  });

  it('answers MISCONFIGURED for a role the database refuses (failed authentication, class 28)', async () => {
    const url = new URL((await createTestDatabase()).url);
    // The test cluster trusts local connections, so an unknown role is the authentication failure it can show (28000).
    url.username = uniqueName('nobody');
    const error = await recordsErrorOver(url.toString());
    expect(isTributaryError(error) && { code: error.code, message: error.message, details: error.details }).toEqual({
      code: 'MISCONFIGURED',
      message: "The model's source database refuses the credentials of its configured URL; an administrator must correct the CDC source (setCdcSource)",
      details: { reason: 'source-auth-failed' },
    });
    expect((error as Error).cause).toMatchObject({ code: '28000' });
  });
});
