/**
 * `cdc.unroutable_rows`: row changes a mapping matched but could not route raise an alert. They
 * used to be counted only in `tributary_cdc_unroutable_rows_total` (no labels) and logged.
 *
 * - Rule level: the evaluator driven one evaluation at a time on a real platform Postgres, the
 *   rows noted and saved with the status as the CDC leader does (`noteUnroutable`, `saveStatus`).
 * - End to end: a server reading a real source database, a mapping whose topic names a column
 *   that is NULL in the row written.
 */
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { type CdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import { CONTACTS_MAPPING, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { cdcAlertsFixture, evaluateTimes } from '../helpers/cdc-alerts.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const ALERT = alertIdOf({ rule: 'cdc.unroutable_rows', subject: 'cdc:src1', scope: SCOPE });

/** A platform database where app/env reads source `src1`, the leader's store, and an evaluator of the CDC rules over 5 minutes. */
async function cdcFixture(unroutableRowsAllowed = 0): Promise<{ db: Database; store: CdcStore; evaluator: AlertEvaluator }> {
  return cdcAlertsFixture({ maxLagBytes: 1_000, maxRetainedWalBytes: 1_000_000, unroutableRowsAllowed });
}

const evaluate = evaluateTimes;

/** The leader's status write, as `cdc-source.ts` makes it every few seconds. */
function report(store: CdcStore): Promise<void> {
  return store.saveStatus({
    source: 'src1', state: 'streaming', leader: 'leader-1', lastLsn: '0/1', lagBytes: 10, retainedWalBytes: 10, lastError: null, environments: [{ app: 'app', env: 'env' }],
  });
}

function noteRows(store: CdcStore, rows: number, mapping: string, reason: string, scope = { app: 'app', env: 'env' }): void {
  for (let row = 0; row < rows; row += 1) store.noteUnroutable('src1', { ...scope, mapping, reason });
}

describe('cdc.unroutable_rows', () => {
  it('fires when the leader saves unroutable rows with its status, names the mapping and reason of most, and resolves once the window holds none', async () => {
    const { db, store, evaluator } = await cdcFixture();
    await report(store);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, ALERT)).toBeUndefined();

    noteRows(store, 2, 'orders', 'tenant-unavailable');
    noteRows(store, 1, 'contacts', 'topic-value-invalid');
    await report(store);
    await evaluate(evaluator, 2);
    const fired = await getAlert(db, ALERT);
    expect(fired).toMatchObject({ state: 'firing', severity: 'warning', lastValue: 3 });
    expect(fired?.message).toBe('3 row changes matched by a mapping could not be routed in full in the last 300 s (most often mapping "orders": tenant-unavailable)');

    // Counted once: later status writes add nothing.
    await report(store);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 3 });

    // An hour later, nothing new: the window holds none.
    await db.query("UPDATE cdc_unroutable_counts SET minute = minute - interval '1 hour'");
    await report(store);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'resolved' });
  });

  it('keeps the rows noted for the next status write when one fails', async () => {
    const { db, store, evaluator } = await cdcFixture();
    noteRows(store, 2, 'orders', 'key-unavailable');
    await db.query('ALTER TABLE cdc_unroutable_counts RENAME TO cdc_unroutable_counts_away');
    await expect(report(store)).rejects.toThrow(/cdc_unroutable_counts/);
    await db.query('ALTER TABLE cdc_unroutable_counts_away RENAME TO cdc_unroutable_counts');
    noteRows(store, 1, 'orders', 'key-unavailable');
    await report(store);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 3 });
  });

  it('raises an environment’s unroutable rows in that environment alone, naming its own mapping, when several read the source', async () => {
    const { db, store, evaluator } = await cdcFixture();
    await db.query("INSERT INTO cdc_sources (app, env, database_url) VALUES ('billing', 'env', 'postgres://source.example/app')");
    const billing = { app: 'billing', env: 'env' };
    const BILLING_ALERT = alertIdOf({ rule: 'cdc.unroutable_rows', subject: 'cdc:src1', scope: { ...billing, tenant: undefined } });
    const bothReport = () =>
      store.saveStatus({
        source: 'src1', state: 'streaming', leader: 'leader-1', lastLsn: '0/1', lagBytes: 10, retainedWalBytes: 10, lastError: null, environments: [{ app: 'app', env: 'env' }, billing],
      });

    noteRows(store, 3, 'invoices', 'tenant-unavailable', billing);
    await bothReport();
    await evaluate(evaluator, 2);
    expect(await getAlert(db, BILLING_ALERT)).toMatchObject({ state: 'firing', lastValue: 3, message: expect.stringContaining('(most often mapping "invoices": tenant-unavailable)') as unknown });
    expect(await getAlert(db, ALERT)).toBeUndefined();

    // A mapping of the same name in each environment: each counts its own rows.
    noteRows(store, 1, 'invoices', 'key-unavailable', { app: 'app', env: 'env' });
    await bothReport();
    await evaluate(evaluator, 2);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 1, message: expect.stringContaining('(most often mapping "invoices": key-unavailable)') as unknown });
    expect(await getAlert(db, BILLING_ALERT)).toMatchObject({ state: 'firing', lastValue: 3 });
  });

  it('allows ALERTS_CDC_UNROUTABLE_ROWS_ALLOWED rows in the window', async () => {
    const { db, store, evaluator } = await cdcFixture(2);
    noteRows(store, 2, 'orders', 'tenant-invalid');
    await report(store);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, ALERT)).toBeUndefined();
    noteRows(store, 1, 'orders', 'tenant-invalid');
    await report(store);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', lastValue: 3 });
  });
});

describe('a CDC row change its mapping cannot route', () => {
  it('fires cdc.unroutable_rows in the environment, naming the mapping and the reason', { timeout: 120_000 }, async () => {
    const platform = await createTestDatabase({ migrated: true });
    const setup = await setUpCdc({ env: { DATABASE_URL: platform.url, ALERTS_EVALUATE_SECONDS: '1' } });
    const db = openTestPool(platform.url);
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, name: 'by-status', topic: 'crm.contacts.{$row.status}' });

    await setup.source.query(`INSERT INTO contacts (id, tenant_id, status, name) VALUES (1, 'a', NULL, 'Nil')`);

    const alert = await waitFor(
      async () =>
        (await db.query<{ state: string; message: string }>("SELECT state, message FROM alerts WHERE rule = 'cdc.unroutable_rows' AND app = 'shop' AND env = 'prod'"))
          .rows[0],
      { timeoutMs: 60_000, message: 'cdc.unroutable_rows fires' },
    );
    expect(alert).toEqual({ state: 'firing', message: '1 row change matched by a mapping could not be routed in full in the last 300 s (most often mapping "by-status": topic-value-invalid)' });
  });
});
