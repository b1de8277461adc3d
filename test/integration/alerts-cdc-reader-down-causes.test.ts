/**
 * `cdc.reader_down` says which of its causes applies (README, Alerts) — no instance leads the
 * reader, its leader cannot reach the source, its leader cannot start it — and also stands for a
 * reader that streams while its slot cannot be measured (the source does not answer the leader's
 * readings): its lag is unknown, so `cdc.lag` can say nothing, however far behind it falls.
 * Rule level: the evaluator driven one evaluation at a time on a real platform Postgres, the
 * reader's status written where (and as) the CDC leader writes it.
 */
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { createCdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import { followerStatus } from '../../src/pipeline/cdc/source-names.ts';
import { FIGURES_MAX_AGE_MS } from '../../src/pipeline/cdc/wal/slot-readings.ts';
import { CDC_ALERT_SCOPE, cdcAlertsFixture, evaluateTimes } from '../helpers/cdc-alerts.ts';

const DOWN = alertIdOf({ rule: 'cdc.reader_down', subject: 'cdc:src1', scope: CDC_ALERT_SCOPE });
const LAG = alertIdOf({ rule: 'cdc.lag', subject: 'cdc:src1', scope: CDC_ALERT_SCOPE });

/** The leader's status write, as `cdc-source.ts` makes it: `lagBytes` null when the slot could not be measured. */
async function report(db: Database, state: string, lagBytes: number | null, lastError: string | null = null): Promise<void> {
  await createCdcStore(db).saveStatus({
    source: 'src1', state, leader: 'leader-1', lastLsn: '0/1', lagBytes, retainedWalBytes: lagBytes, lastError, environments: [{ app: 'app', env: 'env' }],
  });
}

/** Moves every time the status holds back by a day: as if written a day ago. */
async function aDayPasses(db: Database): Promise<void> {
  await db.query("UPDATE cdc_reader_status SET updated_at = updated_at - interval '1 day', not_streaming_since = not_streaming_since - interval '1 day'");
}

const fixture = () => cdcAlertsFixture({ maxLagBytes: 1_000, maxRetainedWalBytes: 1_000_000 });

describe('cdc.reader_down names its cause', () => {
  it('fires for a reader that streams while its slot has not been measured for longer than the window, and resolves once it is measured again', async () => {
    const { db, evaluator } = await fixture();
    await report(db, 'streaming', 10);
    await aDayPasses(db);
    // The leader writes on, every few seconds: streaming, its readings of the slot unanswered.
    await report(db, 'streaming', null, 'the slot could not be measured: the source database did not answer the reading of the slot within 3000 ms');
    await evaluateTimes(evaluator, 2);
    const fired = await getAlert(db, DOWN);
    expect(fired).toMatchObject({ state: 'firing', severity: 'critical' });
    expect(fired?.message).toMatch(
      /^the CDC reader streams, but its slot has not been measured for \d+ s: its lag is unknown \(the slot could not be measured: the source database did not answer the reading of the slot within 3000 ms\)$/,
    );

    await report(db, 'streaming', 10);
    await evaluateTimes(evaluator, 3);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'resolved' });
  });

  it('neither fires nor resolves for a reader streaming unmeasured for less than the window (one reading missed)', async () => {
    const { db, evaluator } = await fixture();
    await report(db, 'streaming', 10);
    await aDayPasses(db);
    await evaluateTimes(evaluator, 2);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'firing' });

    await report(db, 'streaming', 10);
    await report(db, 'streaming', null, 'the slot could not be measured: read ECONNRESET');
    await evaluateTimes(evaluator, 3);
    expect(await getAlert(db, DOWN)).toMatchObject({ state: 'firing' });
  });

  it('says no instance leads the reader when its status has gone stale', async () => {
    const { db, evaluator } = await fixture();
    await report(db, 'streaming', 10);
    await aDayPasses(db);
    await evaluateTimes(evaluator, 2);
    expect((await getAlert(db, DOWN))?.message).toMatch(
      /^the CDC reader has not reported streaming for \d+ s: no instance leads it \(its status was last written \d+ s ago, saying streaming\)$/,
    );
  });

  it('says its leader cannot reach the source while it reports reconnecting, and cannot start it while it reports failed', async () => {
    const { db, evaluator } = await fixture();
    await report(db, 'streaming', 10);
    await aDayPasses(db);
    await report(db, 'reconnecting', null, 'connect ECONNREFUSED 127.0.0.1:5432');
    await evaluateTimes(evaluator, 2);
    expect((await getAlert(db, DOWN))?.message).toMatch(
      /^the CDC reader has not reported streaming for \d+ s: its leader cannot reach the source database and is reconnecting \(connect ECONNREFUSED 127\.0\.0\.1:5432\)$/,
    );

    await report(db, 'failed', null, 'database "crm" is not currently accepting connections');
    await evaluateTimes(evaluator, 1);
    expect((await getAlert(db, DOWN))?.message).toMatch(/^the CDC reader has not reported streaming for \d+ s: its leader cannot start it \(database "crm" is not currently accepting connections\)$/);
  });

  it('keeps an open cdc.lag open while the lag is unknown', async () => {
    const { db, evaluator } = await fixture();
    await report(db, 'streaming', 5_000);
    await evaluateTimes(evaluator, 2);
    expect(await getAlert(db, LAG)).toMatchObject({ state: 'firing' });

    await report(db, 'streaming', null, 'the slot could not be measured: read ECONNRESET');
    await evaluateTimes(evaluator, 3);
    expect(await getAlert(db, LAG)).toMatchObject({ state: 'firing' });
  });
});

describe('the status of a reader another instance leads', () => {
  it('shows the figures its leader wrote while it writes them on, and none once they are older than they may be reported', async () => {
    const { db, store } = await fixture();
    await report(db, 'streaming', 10);
    const names = { slotName: 'slot', publicationName: 'pub' };
    expect(followerStatus('src1', names, await store.getStatus('src1'), null)).toMatchObject({ state: 'streaming', lagBytes: 10, retainedWalBytes: 10 });

    await db.query('UPDATE cdc_reader_status SET updated_at = updated_at - make_interval(secs => $1)', [(FIGURES_MAX_AGE_MS + 1000) / 1000]);
    expect(followerStatus('src1', names, await store.getStatus('src1'), null)).toMatchObject({ state: 'streaming', lagBytes: null, retainedWalBytes: null, otherSlots: null });
  });
});
