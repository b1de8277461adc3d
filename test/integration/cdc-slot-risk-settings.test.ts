/**
 * What the reader reads of its slot's safety (`readSlotUsage`, `cdc.slot_at_risk`) on source servers
 * unlike the common case of `cdc-slot-risk.test.ts`:
 * - `wal_keep_size` above `max_slot_wal_keep_size`: Postgres keeps that much WAL whatever the slots,
 *   counts `safe_wal_size` from the larger of the two and invalidates the slot only past it — the
 *   budget reported (`maxSlotWalKeepBytes`) and judged is that one;
 * - a Postgres 12 source (no `wal_status` or `safe_wal_size` in `pg_replication_slots`, no
 *   `max_slot_wal_keep_size` or `wal_keep_size` setting), imitated on the test's own server: a schema
 *   put before `pg_catalog` on the search_path whose `pg_replication_slots` view lacks the columns
 *   and whose `current_setting` does not know the settings. Those read null; the lag and retained
 *   WAL are read as on any server, and the reader streams, measured.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { judgeSlotSafety } from '../../src/pipeline/alerts/rules/cdc-rules.ts';
import { ensureSlot, readSlotUsage } from '../../src/pipeline/cdc/wal/replication-setup.ts';
import { gql } from '../helpers/cdc.ts';
import { openTestClient, openTestPool, startPrivatePostgres } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const MIB = 1024 * 1024;


/** Schema `shadow`: Postgres 12's `pg_replication_slots` columns, and a `current_setting` without the settings of Postgres 13. */
async function createPostgres12Shadow(db: pg.ClientBase | pg.Pool): Promise<void> {
  await db.query(`
    CREATE SCHEMA shadow;
    CREATE VIEW shadow.pg_replication_slots AS
      SELECT slot_name, plugin, slot_type, datoid, database, temporary, active, active_pid, xmin, catalog_xmin, restart_lsn, confirmed_flush_lsn
        FROM pg_catalog.pg_replication_slots;
    CREATE FUNCTION shadow.current_setting(setting text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        IF setting IN ('max_slot_wal_keep_size', 'wal_keep_size') THEN
          RAISE EXCEPTION 'unrecognized configuration parameter "%"', setting USING ERRCODE = '42704';
        END IF;
        RETURN pg_catalog.current_setting(setting);
      END $$;
    CREATE FUNCTION shadow.current_setting(setting text, missing_ok boolean) RETURNS text LANGUAGE sql AS $$
      SELECT CASE WHEN setting IN ('max_slot_wal_keep_size', 'wal_keep_size') AND missing_ok THEN NULL
                  ELSE shadow.current_setting(setting) END
    $$;`);
}

/** The session sees what a Postgres 12 server has, and no more. */
async function expectPostgres12(client: pg.ClientBase): Promise<void> {
  await expect(client.query('SELECT wal_status FROM pg_replication_slots')).rejects.toThrow('column "wal_status" does not exist');
  await expect(client.query('SELECT safe_wal_size FROM pg_replication_slots')).rejects.toThrow('column "safe_wal_size" does not exist');
  await expect(client.query("SELECT current_setting('max_slot_wal_keep_size')")).rejects.toThrow('unrecognized configuration parameter');
}

describe('readSlotUsage: the WAL the source server keeps for the slot', () => {
  it('is wal_keep_size when larger than max_slot_wal_keep_size, as Postgres counts safe_wal_size and invalidates the slot', async () => {
    const postgres = await startPrivatePostgres({ settings: { max_slot_wal_keep_size: '16MB', wal_keep_size: '64MB', checkpoint_timeout: '1d', max_wal_size: '1GB' } });
    const client = await openTestClient(postgres.url);
    await client.query("SELECT pg_create_logical_replication_slot('kept', 'pgoutput')");
    expect(await readSlotUsage(client, 'kept')).toMatchObject({ walStatus: 'reserved', maxSlotWalKeepBytes: 64 * MIB });

    // Nobody reads the slot: it stays where it is while WAL is written, until safe_wal_size is
    // under 25 % of the 64 MiB (under 16 MiB, the whole of max_slot_wal_keep_size).
    const safeWalSize = async () =>
      Number((await client.query<{ safe: string }>("SELECT safe_wal_size::text AS safe FROM pg_replication_slots WHERE slot_name = 'kept'")).rows[0]!.safe);
    while ((await safeWalSize()) >= 16 * MIB) await client.query("SELECT pg_logical_emit_message(false, 'slot-risk', repeat('x', 1048576))");
    const usage = (await readSlotUsage(client, 'kept'))!;
    // More WAL retained than max_slot_wal_keep_size, and Postgres does not call it unreserved: the 64 MiB count.
    expect(usage.retainedWalBytes).toBeGreaterThan(16 * MIB);
    expect(usage.walStatus).not.toBe('unreserved');
    expect(usage).toMatchObject({ maxSlotWalKeepBytes: 64 * MIB });
    expect(usage.safeWalBytes).toBeLessThan(16 * MIB);
    const verdict = judgeSlotSafety(usage, 25);
    expect(verdict).toMatchObject({ kind: 'bad', severity: 'critical' });
    const message = verdict.kind === 'bad' ? verdict.message : '';
    expect(message).toContain('before the replication slot retains more than 64 MiB (max_slot_wal_keep_size, or wal_keep_size when larger)');
    expect(message).toContain('under 25 % of those 64 MiB');
  }, 60_000);
});

describe('a Postgres 12 source (no wal_status, safe_wal_size or max_slot_wal_keep_size)', () => {
  it('has the lag and retained WAL of its slot read, wal_status, safe_wal_size and the budget null, and the slot found', async () => {
    const postgres = await startPrivatePostgres({ settings: { max_slot_wal_keep_size: '16MB' } });
    const client = await openTestClient(postgres.url);
    await client.query("SELECT pg_create_logical_replication_slot('old', 'pgoutput')");
    await createPostgres12Shadow(client);
    await client.query('SET search_path = shadow, pg_catalog');
    await expectPostgres12(client);

    const usage = await readSlotUsage(client, 'old');
    expect(usage).toMatchObject({ walStatus: null, safeWalBytes: null, maxSlotWalKeepBytes: null });
    expect(usage?.lagBytes).toBeGreaterThanOrEqual(0);
    expect(usage?.retainedWalBytes).toBeGreaterThan(0);
    expect(await ensureSlot(client, 'old', true)).toMatchObject({ created: false, recreated: false });
  }, 60_000);

  it('streams with its slot measured: cdcSource.status has the lag and retained WAL, walStatus and the budget null', async () => {
    const postgres = await startPrivatePostgres();
    const source = openTestPool(postgres.url);
    await createPostgres12Shadow(source);
    // The role Tributary connects as sees the source as a Postgres 12 server.
    await source.query('CREATE ROLE pg12 LOGIN SUPERUSER');
    await source.query('ALTER ROLE pg12 SET search_path = shadow, pg_catalog, public');
    const url = postgres.url.replace('postgres@', 'pg12@');
    await expectPostgres12(await openTestClient(url));

    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    const set = await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
    type Status = { state: string; lagBytes: number | null; retainedWalBytes: number | null; walStatus: string | null; safeWalBytes: number | null; maxSlotWalKeepBytes: number | null; lastError: string | null };
    const measured = await waitFor(
      async () => {
        const body = await gql(server, admin, '{ cdcSource { status { state lagBytes retainedWalBytes walStatus safeWalBytes maxSlotWalKeepBytes lastError } } }');
        expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
        const status = (body.data?.['cdcSource'] as { status: Status | null } | null)?.status;
        // Thrown, the status of the last poll is what a timeout names.
        if (status?.state !== 'streaming' || status.lagBytes === null) throw new Error(`not yet: ${JSON.stringify(status)}`);
        return status;
      },
      { timeoutMs: 30_000, message: 'the reader streams, its slot measured' },
    );
    expect(measured.retainedWalBytes).toBeGreaterThan(0);
    // Stored without a wal_status, the slot's safety reads as not measured (cdc.slot_at_risk unknown).
    expect(measured).toMatchObject({ walStatus: null, safeWalBytes: null, maxSlotWalKeepBytes: null, lastError: null });
  }, 90_000);
});
