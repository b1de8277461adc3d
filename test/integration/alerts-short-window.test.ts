/**
 * An alert window no longer than the evaluation interval (ALERTS_WINDOW_SECONDS=5 with
 * ALERTS_EVALUATE_SECONDS=5):
 * - the evaluator keeps a bad streak for as long as bad verdicts a few evaluations apart take —
 *   max(window, fireAfter × interval + lease) — not the window alone, which forgot it between two
 *   evaluations so that nothing ever fired; a streak older than that is still forgotten. The age is
 *   made by moving the tracker's `updated_at` back, not by waiting;
 * - a workers process refuses to start with a window shorter than two evaluation intervals,
 *   naming both settings (MISCONFIGURED).
 */
import { randomUUID } from 'node:crypto';
import { expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule, Verdict } from '../../src/pipeline/alerts/alert-rule.ts';
import { alertIdOf, getAlert, listTrackers } from '../../src/pipeline/alerts/alert-store.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { startTestServer } from '../helpers/tributary.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const BAD: Verdict = { kind: 'bad', severity: 'warning', value: 6, message: '6 open connections (limit 3)' };

/** What the workers run with ALERTS_EVALUATE_SECONDS=5 and ALERTS_WINDOW_SECONDS=5 (their lease: 3 × the interval + 2 s). */
const EVALUATE_MS = 5_000;
const TIMING = { windowMs: 5_000, evaluateMs: EVALUATE_MS, leaseMs: EVALUATE_MS * 3 + 2_000 };

it('fires on two bad verdicts one evaluation interval apart when the window is no longer than the interval, and still forgets a streak older than that', async () => {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  const rule: AlertRule = { name: 'test.always_bad', description: 'always bad', read: () => Promise.resolve([{ subject: 'cluster', scope: SCOPE, verdict: BAD }]) };
  const evaluator = createAlertEvaluator({ db, router: { route: () => Promise.resolve({}) as never }, rules: [rule], policy: { fireAfter: 2, resolveAfter: 3 }, holder: randomUUID(), logger, ...TIMING });
  const id = alertIdOf({ rule: 'test.always_bad', subject: 'cluster', scope: SCOPE });
  const ageTracker = (seconds: number) => db.query(`UPDATE alert_trackers SET updated_at = now() - make_interval(secs => $1)`, [seconds]);

  await evaluator.evaluate();
  // The next tick, a little over one interval later (an evaluation takes some time too).
  await ageTracker(6);
  await evaluator.evaluate();
  expect(await getAlert(db, id)).toMatchObject({ state: 'firing', lastValue: 6 });

  // Another subject's streak, left for longer than 2 × 5 s + 17 s: forgotten, as before.
  const stale: AlertRule = { ...rule, name: 'test.stale' };
  const other = createAlertEvaluator({ db, router: { route: () => Promise.resolve({}) as never }, rules: [stale], policy: { fireAfter: 2, resolveAfter: 3 }, holder: randomUUID(), logger, ...TIMING });
  await db.query('DELETE FROM alert_evaluator');
  await other.evaluate();
  await db.query(`UPDATE alert_trackers SET updated_at = now() - interval '28 seconds' WHERE rule = 'test.stale'`);
  await other.evaluate();
  expect(await getAlert(db, alertIdOf({ rule: 'test.stale', subject: 'cluster', scope: SCOPE }))).toBeUndefined();
  expect((await listTrackers(db, 10)).filter((tracker) => tracker.rule === 'test.stale').map((tracker) => tracker.streaks)).toEqual([{ bad: 1, critical: 0, good: 0 }]);
});

it('refuses to start the workers with ALERTS_WINDOW_SECONDS under twice ALERTS_EVALUATE_SECONDS, naming both', async () => {
  await expect(startTestServer({ ALERTS_EVALUATE_SECONDS: '5', ALERTS_WINDOW_SECONDS: '9' })).rejects.toMatchObject({
    code: 'MISCONFIGURED',
    message: expect.stringMatching(/ALERTS_WINDOW_SECONDS=9 .*2 × ALERTS_EVALUATE_SECONDS \(10 s\)/) as unknown,
  });
  // Twice the interval is enough.
  const server = await startTestServer({ ALERTS_EVALUATE_SECONDS: '5', ALERTS_WINDOW_SECONDS: '10' });
  expect(server.role).toBe('all');
});
