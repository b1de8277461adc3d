import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/*
 * A role that may replicate but not read a table would stream its changes while every `records`
 * of the model fails; a publication it does not own cannot take a table. Both are said on save.
 */

const SAVE = 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }';
const mappingOf = (table: string) => ({ name: table, table, events: ['insert', 'update'], topic: `inv.${table}-ev`, module: 'inv', model: table, tenantColumn: 'tenant_id' });

describe('CDC mapping save: the source role', () => {
  it('refuses a table the role may not SELECT with MISCONFIGURED and the GRANT, and one it may not add to the publication with the ALTER PUBLICATION', async () => {
    const database = await createTestDatabase();
    const su = openTestPool(database.url);
    const role = uniqueName('cdc');
    await su.query(`CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL)`);
    await su.query(`CREATE TABLE other (id int PRIMARY KEY, tenant_id text NOT NULL)`);
    await su.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'pw'`);
    const url = new URL(database.url);
    url.username = role;
    url.password = 'pw';
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    expect((await gql(server, admin, 'mutation($u: String!) { setCdcSource(databaseUrl: $u) { host } }', { u: url.toString() })).errors).toBeUndefined();
    const status = async () => ((await gql(server, admin, '{ cdcSource { status { state lastError publicationName } } }')).data?.['cdcSource'] as { status: { state: string; lastError: string | null; publicationName: string } }).status;
    // The role may not create the publication: the status names the statement, FOR no table yet (none is mapped).
    await waitFor(async () => (await status()).state === 'failed', { message: 'the reader fails on the publication' });
    const { lastError, publicationName } = await status();
    expect(lastError).toContain(`CREATE PUBLICATION "${publicationName}" WITH (publish_via_partition_root = true);`);
    await su.query(`CREATE PUBLICATION ${publicationName} FOR TABLE items WITH (publish_via_partition_root = true)`);

    const unreadable = await gql(server, admin, SAVE, { m: mappingOf('items') });
    expect(unreadable.errors?.[0]?.extensions).toMatchObject({ code: 'MISCONFIGURED', field: 'mapping', reason: 'NO_SELECT_PRIVILEGE' });
    expect(unreadable.errors?.[0]?.message).toContain(`GRANT SELECT ON "public"."items" TO "${role}";`);
    await su.query(`GRANT SELECT ON items, other TO ${role}`);
    expect((await gql(server, admin, SAVE, { m: mappingOf('items') })).errors).toBeUndefined();

    const outside = await gql(server, admin, SAVE, { m: mappingOf('other') });
    expect(outside.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    expect(outside.errors?.[0]?.message).toContain(`publication "${publicationName}" does not include public.other`);
    expect(outside.errors?.[0]?.message).toContain(`ALTER PUBLICATION "${publicationName}" ADD TABLE "public"."other";`);

    expect((await gql(server, admin, 'mutation { removeCdcSource }')).errors).toBeUndefined();
    await su.query(`DROP PUBLICATION IF EXISTS ${publicationName}`);
    await waitFor(async () => (await su.query(`SELECT 1 FROM pg_replication_slots WHERE database = current_database() AND active`)).rowCount === 0, { message: 'no reader streams' });
    await su.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()`);
    await su.query(`DROP OWNED BY ${role}`);
    await su.query(`DROP ROLE ${role}`);
  });
});
