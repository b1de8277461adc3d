/**
 * `cdc.retained_wal` on the other Tributary slots of a source database, at rule level: the
 * evaluator driven one evaluation at a time on a real platform Postgres, the reader's status
 * written where (and as) the CDC leader writes it (`cdc-store.ts`, migration 0038). The end-to-end
 * path (a real slot left on a real source) is `cdc-other-slots.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { createCdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import type { OtherSlot } from '../../src/pipeline/cdc/wal/other-slots.ts';
import { cdcAlertsFixture, evaluateTimes } from '../helpers/cdc-alerts.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const LIMIT = 1024 * 1024;
const LEFT_OVER = 'tributary_0123456789abcdef0123_0123456789ab';
const SLOT_ALERT = alertIdOf({ rule: 'cdc.retained_wal', subject: `cdc:src1/${LEFT_OVER}`, scope: SCOPE });
const OWN_ALERT = alertIdOf({ rule: 'cdc.retained_wal', subject: 'cdc:src1', scope: SCOPE });

async function cdcFixture(): Promise<{ db: Database; evaluator: AlertEvaluator }> {
  return cdcAlertsFixture({ maxLagBytes: LIMIT, maxRetainedWalBytes: LIMIT });
}

const evaluate = evaluateTimes;

/** The leader's status write, its own slot well within the limit. */
async function report(db: Database, slots: OtherSlot[] | null, leftOut = 0): Promise<void> {
  await createCdcStore(db).saveStatus({
    source: 'src1', state: 'streaming', leader: 'leader-1', lastLsn: '0/1', lagBytes: 10, retainedWalBytes: 10,
    otherSlots: slots && { slots, leftOut }, lastError: null, environments: [{ app: 'app', env: 'env' }],
  });
}

describe('cdc.retained_wal on other Tributary slots', () => {
  it('fires for a left-over slot over the limit, naming it and how to drop it, and resolves once a status lists every slot but it', async () => {
    const { db, evaluator } = await cdcFixture();
    await report(db, [{ slotName: LEFT_OVER, active: false, retainedWalBytes: 5 * LIMIT }]);
    await evaluate(evaluator, 2);
    const fired = await getAlert(db, SLOT_ALERT);
    expect(fired).toMatchObject({ state: 'firing', severity: 'critical', lastValue: 5 * LIMIT });
    expect(fired?.message).toContain(`retained WAL of replication slot "${LEFT_OVER}" is 5 MiB (limit 1 MiB)`);
    expect(fired?.message).toContain(`left over by a Tributary deployment that no longer runs`);
    expect(fired?.message).toContain(`dropCdcSlot(slotName: "${LEFT_OVER}")`);
    // Its own slot is judged apart, and is fine.
    expect(await getAlert(db, OWN_ALERT)).toBeUndefined();

    // More slots than listed: one not listed may only be left out, not gone.
    await report(db, [], 1);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, SLOT_ALERT)).toMatchObject({ state: 'firing' });
    // Not measured (the reader could not read the slots): not gone either.
    await report(db, null);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, SLOT_ALERT)).toMatchObject({ state: 'firing' });

    await report(db, []);
    await evaluate(evaluator, 1);
    expect(await getAlert(db, SLOT_ALERT)).toMatchObject({ state: 'resolved', message: `replication slot "${LEFT_OVER}" no longer exists on the source database` });
  });

  it("says a slot streamed now is another deployment's, and resolves once its retained WAL is back within the limit", async () => {
    const { db, evaluator } = await cdcFixture();
    await report(db, [{ slotName: LEFT_OVER, active: true, retainedWalBytes: 2 * LIMIT }]);
    await evaluate(evaluator, 2);
    const fired = await getAlert(db, SLOT_ALERT);
    expect(fired).toMatchObject({ state: 'firing', severity: 'critical' });
    expect(fired?.message).toContain('belongs to another Tributary deployment reading this database');
    expect(fired?.message).not.toContain('dropCdcSlot');

    await report(db, [{ slotName: LEFT_OVER, active: true, retainedWalBytes: LIMIT / 10 }]);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, SLOT_ALERT)).toMatchObject({ state: 'resolved', lastValue: LIMIT / 10 });
  });
});
