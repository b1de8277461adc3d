/**
 * A source server with `max_slot_wal_keep_size` invalidates a slot that retains more WAL than that
 * at its next checkpoint, and the changes in it are missed: `cdc.slot_at_risk` warns before, from
 * the slot's `wal_status` and `safe_wal_size` the reader reads with its other figures
 * (`cdcSource.status`, `/metrics`). End to end on a source server of the test's own (16 MB kept at
 * most, no timed checkpoint during the test), the slot held back by a transaction left open on the
 * source (a logical slot keeps the WAL from the oldest transaction still open) while WAL is written.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { gql, metricSample } from '../helpers/cdc.ts';
import { openTestPool, startPrivatePostgres } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor, type WaitForOptions } from '../helpers/wait-for.ts';

const MIB = 1024 * 1024;
const KEEP = 16 * MIB;
/** The alert's margin: 25 % of the setting (the default). */
const MARGIN = KEEP / 4;

interface Status {
  readonly state: string;
  readonly slotName: string | null;
  readonly walStatus: string | null;
  readonly safeWalBytes: number | null;
  readonly maxSlotWalKeepBytes: number | null;
}

interface Alert {
  readonly rule: string;
  readonly status: string;
  readonly severity: string;
  readonly message: string;
}

/** Waits for `probe` to find something, and resolves with it. */
async function found<T>(probe: () => Promise<T | undefined>, options: WaitForOptions): Promise<T> {
  return (await waitFor(probe, options)) as T;
}

async function status(server: TestServer, admin: string): Promise<Status | undefined> {
  const body = await gql(server, admin, '{ cdcSource { status { state slotName walStatus safeWalBytes maxSlotWalKeepBytes } } }');
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['cdcSource'] as { status: Status | null } | null)?.status ?? undefined;
}

async function slotRiskAlert(server: TestServer, admin: string): Promise<Alert | undefined> {
  const body = await gql(server, admin, '{ alerts(first: 200) { nodes { rule status severity message } } }');
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['alerts'] as { nodes: Alert[] }).nodes.find((alert) => alert.rule === 'cdc.slot_at_risk');
}

describe('cdc.slot_at_risk against a source server with max_slot_wal_keep_size', () => {
  it('fires once safe_wal_size is under 25 % of the setting, names the bytes left and the setting, says when unreserved, and resolves back to safe', async () => {
    const postgres = await startPrivatePostgres({ settings: { max_slot_wal_keep_size: '16MB', checkpoint_timeout: '1d', max_wal_size: '1GB' } });
    const source = openTestPool(postgres.url);
    await source.query('CREATE TABLE held (id int)');
    const server = await startTestServer({
      JWT_SECRET: TEST_SECRET,
      CDC_RELOAD_INTERVAL_MS: '200',
      ALERTS_EVALUATE_SECONDS: '1',
      ALERTS_WINDOW_SECONDS: '30',
      ALERTS_FIRE_AFTER: '1',
      ALERTS_RESOLVE_AFTER: '1',
      // The admin token's environment sees the cluster dashboard.
      OPERATOR_SCOPE: 'shop/prod',
      DASHBOARD_TICK_SECONDS: '1',
    });
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    const set = await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: postgres.url });
    expect(set.errors, JSON.stringify(set.errors)).toBeUndefined();
    const measured = await found(
      async () => {
        const current = await status(server, admin);
        return current?.state === 'streaming' && current.walStatus !== null ? current : undefined;
      },
      { timeoutMs: 30_000, message: 'the reader streams, its slot measured' },
    );
    expect(measured).toMatchObject({ walStatus: 'reserved', maxSlotWalKeepBytes: KEEP });
    expect(measured.safeWalBytes).toBeGreaterThan(MARGIN);
    const slotName = measured.slotName!;
    const slot = async () =>
      (await source.query<{ wal_status: string; safe: string | null }>('SELECT wal_status, safe_wal_size::text AS safe FROM pg_replication_slots WHERE slot_name = $1', [slotName])).rows[0]!;
    /** Writes WAL, 1 MiB at a time, until the slot is as `done` says. */
    const writeWalUntil = async (done: (row: { wal_status: string; safe: string | null }) => boolean) => {
      while (!done(await slot())) await source.query("SELECT pg_logical_emit_message(false, 'slot-risk', repeat('x', 1048576))");
    };

    // A transaction left open on the source, which has written: the slot keeps the WAL from there on.
    const holder = new pg.Client({ connectionString: postgres.url });
    holder.on('error', () => {});
    await holder.connect();
    onTestFinished(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('INSERT INTO held VALUES (1)');

    await writeWalUntil((row) => row.safe !== null && Number(row.safe) < MARGIN);
    expect((await slot()).wal_status).not.toBe('unreserved');
    const fired = await found(async () => {
      const alert = await slotRiskAlert(server, admin);
      return alert?.status === 'FIRING' ? alert : undefined;
    }, { timeoutMs: 30_000, message: 'cdc.slot_at_risk fires' });
    expect(fired.severity).toBe('CRITICAL');
    expect(fired.message).toMatch(/^only \d+ (MiB|B) of WAL can still be written \(safe_wal_size\) before the replication slot retains more than 16 MiB \(max_slot_wal_keep_size, or wal_keep_size when larger\)/);
    expect(fired.message).toContain('under 25 % of those 16 MiB');
    const atRisk = await status(server, admin);
    expect(atRisk?.safeWalBytes).toBeLessThan(MARGIN);
    expect(atRisk?.maxSlotWalKeepBytes).toBe(KEEP);
    const safeSample = await metricSample(server, 'tributary_cdc_slot_safe_wal_bytes');
    expect(safeSample).toBeGreaterThan(0);
    expect(safeSample).toBeLessThan(MARGIN);
    // The dashboard shows it with the retained WAL, over GraphQL and REST.
    const shown = await found(async () => {
      const body = await gql(server, admin, '{ dashboard { cluster { cdc { source safeWalBytes } } } }');
      const cdc = (body.data?.['dashboard'] as { cluster: { cdc: { safeWalBytes: number | null }[] } } | null)?.cluster.cdc ?? [];
      return cdc.length === 1 && cdc[0]!.safeWalBytes !== null && cdc[0]!.safeWalBytes < MARGIN ? cdc[0] : undefined;
    }, { timeoutMs: 30_000, message: 'the dashboard shows the safe WAL' });
    expect(shown.safeWalBytes).toBeGreaterThan(0);
    const rest = await fetch(`${server.url}/api/metrics/dashboard`, { headers: { authorization: `Bearer ${admin}` } });
    expect(rest.status).toBe(200);
    const restCdc = ((await rest.json()) as { cluster: { cdc: { safeWalBytes: number | null }[] } }).cluster.cdc;
    expect(restCdc).toHaveLength(1);
    expect(restCdc[0]!.safeWalBytes).toBeGreaterThan(0);
    expect(restCdc[0]!.safeWalBytes).toBeLessThan(MARGIN);

    // Beyond the setting: the server's next checkpoint would invalidate the slot.
    await writeWalUntil((row) => row.wal_status === 'unreserved');
    const unreserved = await found(async () => {
      const alert = await slotRiskAlert(server, admin);
      return alert?.status === 'FIRING' && alert.message.includes('wal_status unreserved') ? alert : undefined;
    }, { timeoutMs: 30_000, message: 'cdc.slot_at_risk says the slot is unreserved' });
    expect(unreserved.message).toMatch(/retains \d+ (MiB|B) more WAL than the source server keeps for it, 16 MiB \(max_slot_wal_keep_size, or wal_keep_size when larger\)/);
    expect((await status(server, admin))?.walStatus).toBe('unreserved');
    expect(await metricSample(server, 'tributary_cdc_slot_safe_wal_bytes')).toBeLessThan(0);

    // The transaction ends before any checkpoint: the slot moves on (at the next snapshot of running
    // transactions the source logs), keeps little WAL again, and the alert resolves.
    await holder.query('ROLLBACK');
    await source.query('INSERT INTO held VALUES (2)');
    const resolved = await found(async () => {
      const alert = await slotRiskAlert(server, admin);
      return alert?.status === 'RESOLVED' ? alert : undefined;
    }, { timeoutMs: 90_000, message: 'cdc.slot_at_risk resolves once the slot moved on' });
    expect(resolved.message).toMatch(/^back to safe: \d+ MiB of WAL can still be written/);
    expect((await status(server, admin))?.walStatus).not.toBe('unreserved');
    // A private server to start, WAL to write, and the source's snapshot of running transactions (every 15 s) to wait for.
  }, 180_000);
});
