/**
 * `cdc.slot_at_risk` at rule level: the evaluator driven one evaluation at a time on a real platform
 * Postgres, the reader's status written where (and as) the CDC leader writes it (`cdc-store.ts`,
 * migration 0041) — and as a leader of the previous version writes it during a rolling upgrade.
 * The end-to-end path (a real source server with `max_slot_wal_keep_size`) is `cdc-slot-risk.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import type { CdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import type { SlotWalSafety } from '../../src/pipeline/cdc/wal/slot-readings.ts';
import { CDC_ALERT_SCOPE, cdcAlertsFixture, evaluateTimes } from '../helpers/cdc-alerts.ts';

const MIB = 1024 * 1024;
const KEEP = 16 * MIB;
const ALERT = alertIdOf({ rule: 'cdc.slot_at_risk', subject: 'cdc:src1', scope: CDC_ALERT_SCOPE });

const fixture = () => cdcAlertsFixture({ maxLagBytes: 1_000_000_000, maxRetainedWalBytes: 1_000_000_000 });

/** The leader's status write, its lag and retained WAL well within their limits. */
async function report(store: CdcStore, walSafety: SlotWalSafety | null): Promise<void> {
  await store.saveStatus({
    source: 'src1', state: 'streaming', leader: 'leader-1', lastLsn: '0/1', lagBytes: 10, retainedWalBytes: 10,
    walSafety, lastError: null, environments: [{ app: 'app', env: 'env' }],
  });
}

/** The status write of a leader of the previous version (before migration 0041): it knows nothing of the slot's wal_status. */
async function reportAsPreviousVersion(db: Database): Promise<void> {
  await db.query(
    `INSERT INTO cdc_reader_status (source, state, leader, last_lsn, lag_bytes, retained_wal_bytes, other_slots, last_error, environments, updated_at, not_streaming_since)
     VALUES ('src1', 'streaming', 'old-leader', '0/2', 10, 10, NULL, NULL, '[{"app":"app","env":"env"}]'::jsonb, now(), NULL)
     ON CONFLICT (source) DO UPDATE SET state = excluded.state, leader = excluded.leader,
       last_lsn = coalesce(excluded.last_lsn, cdc_reader_status.last_lsn), lag_bytes = excluded.lag_bytes,
       retained_wal_bytes = excluded.retained_wal_bytes, other_slots = excluded.other_slots, last_error = excluded.last_error,
       environments = coalesce(excluded.environments, cdc_reader_status.environments), updated_at = now(),
       not_streaming_since = CASE WHEN excluded.state = 'streaming' AND excluded.lag_bytes IS NOT NULL THEN NULL
         ELSE coalesce(cdc_reader_status.not_streaming_since, cdc_reader_status.updated_at) END`,
  );
}

describe('cdc.slot_at_risk', () => {
  it('fires while safe_wal_size is under the margin, says so once unreserved, and resolves back to safe', async () => {
    const { db, store, evaluator } = await fixture();
    await report(store, { walStatus: 'reserved', safeWalBytes: 20 * MIB, maxSlotWalKeepBytes: KEEP });
    await evaluateTimes(evaluator, 2);
    expect(await getAlert(db, ALERT)).toBeUndefined();

    await report(store, { walStatus: 'reserved', safeWalBytes: 3 * MIB, maxSlotWalKeepBytes: KEEP });
    expect((await store.getStatus('src1'))?.walSafety).toEqual({ walStatus: 'reserved', safeWalBytes: 3 * MIB, maxSlotWalKeepBytes: KEEP });
    await evaluateTimes(evaluator, 2);
    const fired = await getAlert(db, ALERT);
    expect(fired).toMatchObject({ state: 'firing', severity: 'critical', lastValue: 3 * MIB });
    expect(fired?.message).toContain('only 3 MiB of WAL can still be written (safe_wal_size)');
    expect(fired?.message).toContain('16 MiB (max_slot_wal_keep_size, or wal_keep_size when larger)');

    await report(store, { walStatus: 'unreserved', safeWalBytes: -2 * MIB, maxSlotWalKeepBytes: KEEP });
    await evaluateTimes(evaluator, 1);
    const unreserved = await getAlert(db, ALERT);
    expect(unreserved).toMatchObject({ state: 'firing', lastValue: -2 * MIB });
    expect(unreserved?.message).toContain('wal_status unreserved');
    expect(unreserved?.message).toContain('retains 2 MiB more WAL than the source server keeps for it');

    await report(store, { walStatus: 'reserved', safeWalBytes: 24 * MIB, maxSlotWalKeepBytes: KEEP });
    await evaluateTimes(evaluator, 3);
    const resolved = await getAlert(db, ALERT);
    expect(resolved).toMatchObject({ state: 'resolved', lastValue: 24 * MIB });
    expect(resolved?.message).toContain('back to safe: 24 MiB of WAL can still be written');
  });

  it('never fires for a server without max_slot_wal_keep_size (safe_wal_size null)', async () => {
    const { db, store, evaluator } = await fixture();
    await report(store, { walStatus: 'extended', safeWalBytes: null, maxSlotWalKeepBytes: null });
    await evaluateTimes(evaluator, 3);
    expect(await getAlert(db, ALERT)).toBeUndefined();
  });

  it("reads a previous version's status write as unknown, not as the wal_status a newer leader wrote before it", async () => {
    const { db, store, evaluator } = await fixture();
    await report(store, { walStatus: 'unreserved', safeWalBytes: -MIB, maxSlotWalKeepBytes: KEEP });
    await evaluateTimes(evaluator, 1);
    // Leadership moves to an instance of the previous version: its writes leave the columns as they were.
    await reportAsPreviousVersion(db);
    expect((await store.getStatus('src1'))?.walSafety).toBeNull();
    await evaluateTimes(evaluator, 1);
    // Unknown neither fires (the stale 'unreserved' would have: fireAfter 2) nor breaks the streak (a good verdict would have).
    expect(await getAlert(db, ALERT)).toBeUndefined();
    await report(store, { walStatus: 'unreserved', safeWalBytes: -MIB, maxSlotWalKeepBytes: KEEP });
    await evaluateTimes(evaluator, 1);
    expect(await getAlert(db, ALERT)).toMatchObject({ state: 'firing', severity: 'critical' });
  });
});
