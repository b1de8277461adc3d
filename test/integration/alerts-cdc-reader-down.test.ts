/**
 * `cdc.reader_down`: a CDC source nobody reads. A reader that cannot reach its source database
 * stops reporting figures, and the figure rules (`cdc.lag`, `cdc.retained_wal`) then read unknown
 * — neither firing nor resolving — while the slot keeps more and more WAL on the source server.
 * Their reader having not reported streaming for longer than the window is itself the alert.
 *
 * - Rule level: the evaluator driven one evaluation at a time on a real platform Postgres, the
 *   reader's status written where (and as) the CDC leader writes it.
 * - End to end: a server reading a real source database that stops accepting its connections
 *   (`ALLOW_CONNECTIONS false` and its backends terminated), then accepts them again.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { createCdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import { setUpCdc, type CdcSetup } from '../helpers/cdc.ts';
import { cdcAlertsFixture, evaluateTimes } from '../helpers/cdc-alerts.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const DOWN = alertIdOf({ rule: 'cdc.reader_down', subject: 'cdc:src1', scope: SCOPE });

/** A platform database where app/env reads source `src1`, and an evaluator of the CDC rules over a 5-minute window. */
async function cdcFixture(): Promise<{ db: Database; evaluator: AlertEvaluator }> {
  return cdcAlertsFixture({ maxLagBytes: 1_000, maxRetainedWalBytes: 1_000_000 });
}

const evaluate = evaluateTimes;

/** The leader's status write, as `cdc-source.ts` makes it. */
async function report(db: Database, state: string, lastError: string | null = null): Promise<void> {
  await createCdcStore(db).saveStatus({
    source: 'src1', state, leader: 'leader-1', lastLsn: '0/1', lagBytes: state === 'streaming' ? 10 : null,
    retainedWalBytes: state === 'streaming' ? 10 : null, lastError, environments: [{ app: 'app', env: 'env' }],
  });
}

/** Moves every time the status holds back by a day: as if written a day ago. */
async function aDayPasses(db: Database): Promise<void> {
  await db.query("UPDATE cdc_reader_status SET updated_at = updated_at - interval '1 day'");
  await db.query("UPDATE cdc_reader_status SET not_streaming_since = not_streaming_since - interval '1 day'").catch(() => undefined);
}

describe('cdc.reader_down', () => {
  it('fires (critical) for a source whose reader has not reported for longer than the window, and resolves once it reports streaming again', async () => {
    const { db, evaluator } = await cdcFixture();
    await report(db, 'streaming');
    await evaluate(evaluator, 2);
    expect(await getAlert(db, DOWN)).toBeUndefined();

    // The leader last reported streaming a day ago: nobody reads the source since.
    await aDayPasses(db);
    await evaluate(evaluator, 2);
    const fired = await getAlert(db, DOWN);
    expect(fired).toMatchObject({ state: 'firing', severity: 'critical' });
    expect(fired?.message).toMatch(/^the CDC reader has not reported streaming for \d+ s: no instance leads it \(its status was last written \d+ s ago, saying streaming\)$/);

    await report(db, 'streaming');
    await evaluate(evaluator, 3);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'resolved' });
  });

  it('fires for a reader that reports, but has not streamed for longer than the window (failing to start, reconnecting), and stays open while it is not streaming', async () => {
    const { db, evaluator } = await cdcFixture();
    await report(db, 'streaming');
    await aDayPasses(db);
    // A leader (a new one, or the same after a restart) reports every few seconds that it cannot start.
    await report(db, 'failed', 'database "crm" is not currently accepting connections');
    await evaluate(evaluator, 2);
    const fired = await getAlert(db, DOWN);
    expect(fired).toMatchObject({ state: 'firing', severity: 'critical' });
    expect(fired?.message).toMatch(/^the CDC reader has not reported streaming for \d+ s: its leader cannot start it \(database "crm" is not currently accepting connections\)$/);

    await report(db, 'reconnecting', 'connection refused');
    await evaluate(evaluator, 3);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'firing' });
  });

  it('neither fires nor resolves for a reader not streaming for less than the window (a reconnect)', async () => {
    const { db, evaluator } = await cdcFixture();
    await report(db, 'reconnecting', 'the replication stream ended');
    await evaluate(evaluator, 3);
    expect(await getAlert(db, DOWN)).toBeUndefined();
  });

  it('says nothing of a source whose every environment was removed, and resolves its alert as gone', async () => {
    const { db, evaluator } = await cdcFixture();
    await report(db, 'streaming');
    await aDayPasses(db);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'firing' });

    await db.query("DELETE FROM cdc_sources WHERE app = 'app' AND env = 'env'");
    await evaluate(evaluator, 1);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'resolved', message: 'cdc:src1 no longer exists' });
    await evaluate(evaluator, 2);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'resolved', count: 1 });
  });
});

/** A pool on the cluster's `postgres` database, to administer the source database from outside it. */
function adminPool(setup: CdcSetup) {
  const url = new URL(setup.sourceUrl);
  url.pathname = '/postgres';
  return openTestPool(url.toString());
}

describe('a CDC source database that stops accepting Tributary’s connections', () => {
  it('reports its reader reconnecting, fires cdc.reader_down, and resolves it once the source accepts connections again', { timeout: 120_000 }, async () => {
    const platform = await createTestDatabase({ migrated: true });
    // A window of a few status reports (every 5 s), so a healthy reader is never stale in it.
    const setup = await setUpCdc({ env: { DATABASE_URL: platform.url, ALERTS_EVALUATE_SECONDS: '1', ALERTS_WINDOW_SECONDS: '12' } });
    const db = openTestPool(platform.url);
    const downAlert = async () =>
      (await db.query<{ state: string; message: string }>("SELECT state, message FROM alerts WHERE rule = 'cdc.reader_down' AND app = 'shop' AND env = 'prod'")).rows;

    const database = new URL(setup.sourceUrl).pathname.slice(1);
    const admin = adminPool(setup);
    await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS false`);
    onTestFinished(() => admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`).then(() => undefined));
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);

    // The leader says so where every instance (and the alert rules) read it.
    await waitFor(async () => (await db.query<{ state: string }>('SELECT state FROM cdc_reader_status')).rows[0]?.state === 'reconnecting', {
      timeoutMs: 30_000,
      message: 'the status says reconnecting',
    });
    const fired = await waitFor(async () => (await downAlert()).find((alert) => alert.state === 'firing'), { timeoutMs: 60_000, message: 'cdc.reader_down fires' });
    expect(fired?.message).toMatch(/^the CDC reader has not reported streaming for \d+ s: its leader cannot reach the source database and is reconnecting \(/);

    await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS true`);
    await waitFor(async () => (await downAlert()).some((alert) => alert.state === 'resolved'), { timeoutMs: 60_000, message: 'cdc.reader_down resolves' });
  });
});
