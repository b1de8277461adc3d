/**
 * The evaluator's hysteresis on a real Postgres, one evaluation at a time (no timer):
 * - a bad streak is forgotten once its last bad verdict is older than the window, however many
 *   unknown verdicts came since (they leave the tracker as it was, so its age is that of the bad
 *   verdict); the age is made by moving the tracker's `updated_at` back, not by waiting;
 * - a webhook endpoint that recovered at low traffic (fewer attempts than the minimum sample, all
 *   delivered) resolves its failure-rate alert.
 */
import { randomUUID } from 'node:crypto';
import { expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator, type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule, Verdict } from '../../src/pipeline/alerts/alert-rule.ts';
import { alertIdOf, getAlert, listTrackers } from '../../src/pipeline/alerts/alert-store.ts';
import { webhookFailureRateRule } from '../../src/pipeline/alerts/rules/webhook-rules.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const WINDOW_MS = 300_000;

async function database(): Promise<{ db: Database; endpointId: string }> {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  return fixture;
}

function evaluatorOf(db: Database, rules: AlertRule[]): AlertEvaluator {
  return createAlertEvaluator({
    db,
    router: { route: () => Promise.resolve({}) as never },
    rules,
    policy: { fireAfter: 2, resolveAfter: 3 },
    windowMs: WINDOW_MS,
    holder: randomUUID(),
    leaseMs: 60_000,
    logger,
  });
}

/** A rule whose one subject's verdict is whatever the test last set. */
function scriptedRule(): { rule: AlertRule; set(verdict: Verdict): void } {
  let verdict: Verdict = { kind: 'unknown', reason: 'not set' };
  return {
    rule: { name: 'test.scripted', description: 'scripted', read: () => Promise.resolve([{ subject: 'thing', scope: SCOPE, verdict }]) },
    set: (next) => (verdict = next),
  };
}

const BAD: Verdict = { kind: 'bad', severity: 'warning', value: 2, message: 'bad' };
const UNKNOWN: Verdict = { kind: 'unknown', reason: 'no figure' };

it('forgets a bad streak whose last bad verdict is older than the window, though only unknown verdicts came since', async () => {
  const { db } = await database();
  const scripted = scriptedRule();
  const other = scriptedRule();
  const evaluator = evaluatorOf(db, [scripted.rule, { ...other.rule, name: 'test.stale' }]);
  const id = alertIdOf({ rule: 'test.scripted', subject: 'thing', scope: SCOPE });
  const age = async () => (await listTrackers(db, 10)).map((tracker) => Math.round(tracker.idleMs / 60_000));

  scripted.set(BAD);
  await evaluator.evaluate();
  await db.query("UPDATE alert_trackers SET updated_at = now() - interval '4 minutes'");
  // Unknown verdicts leave the tracker as it was: its age is still the bad verdict's.
  scripted.set(UNKNOWN);
  for (let i = 0; i < 3; i += 1) await evaluator.evaluate();
  expect(await age()).toEqual([4]);
  // Within the window, one more bad verdict fires: two in a row, unknowns aside.
  scripted.set(BAD);
  await evaluator.evaluate();
  expect((await getAlert(db, id))?.state).toBe('firing');

  // A subject of another rule: one bad verdict, then hours of unknown ones.
  scripted.set(UNKNOWN);
  const stale = evaluator;
  const staleId = alertIdOf({ rule: 'test.stale', subject: 'thing', scope: SCOPE });
  other.set(BAD);
  await stale.evaluate();
  await db.query("UPDATE alert_trackers SET updated_at = now() - interval '14 hours' WHERE rule = 'test.stale'");
  other.set(UNKNOWN);
  await stale.evaluate();
  // Forgotten: the tracker is dropped, and the next bad verdict is the first of a new streak.
  expect((await listTrackers(db, 10)).filter((tracker) => tracker.rule === 'test.stale')).toEqual([]);
  other.set(BAD);
  await stale.evaluate();
  expect(await getAlert(db, staleId)).toBeUndefined();
  expect((await listTrackers(db, 10)).filter((tracker) => tracker.rule === 'test.stale').map((tracker) => tracker.streaks)).toEqual([{ bad: 1, critical: 0, good: 0 }]);
  await stale.evaluate();
  expect((await getAlert(db, staleId))?.state).toBe('firing');
});

it('starts a new streak from a stale bad streak when bad verdicts follow at once, and fires', async () => {
  const { db } = await database();
  const scripted = scriptedRule();
  const evaluator = evaluatorOf(db, [scripted.rule]);
  const id = alertIdOf({ rule: 'test.scripted', subject: 'thing', scope: SCOPE });
  scripted.set(BAD);
  await evaluator.evaluate();
  // Stale (the rule could not be read for longer than the window, say), then bad verdicts in a row:
  // the first is the first of a new streak — written, so the second is the second.
  await db.query("UPDATE alert_trackers SET updated_at = now() - interval '1 hour'");
  await evaluator.evaluate();
  expect(await getAlert(db, id)).toBeUndefined();
  await evaluator.evaluate();
  expect((await getAlert(db, id))?.state).toBe('firing');
});

it('resolves the failure-rate alert of an endpoint that recovered at fewer attempts than the minimum sample', async () => {
  const { db, endpointId } = await database();
  const tally = async (attempts: number, failures: number) => {
    await db.query('DELETE FROM webhook_attempt_tallies WHERE endpoint_id = $1', [endpointId]);
    await db.query('INSERT INTO webhook_attempt_tallies (endpoint_id, span_start, attempts, failures) VALUES ($1, now(), $2, $3)', [endpointId, attempts, failures]);
  };
  const evaluator = evaluatorOf(db, [webhookFailureRateRule(db, { minSamples: 20, criticalRatio: 0.5, warningRatio: 0.2 })]);
  const id = alertIdOf({ rule: 'webhook.failure_rate', subject: `endpoint:${endpointId}`, scope: SCOPE });
  // The outage: five events, each retried six times, all failing.
  await tally(30, 30);
  await evaluator.evaluate();
  await evaluator.evaluate();
  expect((await getAlert(db, id))?.state).toBe('firing');
  // Too few attempts, and too many of them failing, to tell: nothing moves.
  await tally(10, 5);
  for (let i = 0; i < 5; i += 1) await evaluator.evaluate();
  expect((await getAlert(db, id))?.state).toBe('firing');
  // Recovered: ten events a window, all delivered — three good evaluations resolve it.
  await tally(10, 0);
  await evaluator.evaluate();
  await evaluator.evaluate();
  expect((await getAlert(db, id))?.state).toBe('firing');
  await evaluator.evaluate();
  expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', lastValue: 0 });
});
