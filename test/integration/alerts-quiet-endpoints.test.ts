/**
 * Webhook alerts of endpoints that stopped being attempted, on a real Postgres, one evaluation at a
 * time (no timer):
 * - an endpoint disabled (by an admin, or by its receiver's 410) is out of both webhook rules'
 *   sight: its `webhook.failure_rate` and `webhook.dead_letters` alerts resolve at once, saying it
 *   was disabled, and it fires nothing while disabled — `tributary_alerts_open` (`openCounts`) falls
 *   to 0 and Alertmanager stops paging. It still exists: retention keeps its resolved alerts;
 * - a watched endpoint without attempts over a whole window and nothing waiting to be delivered
 *   reads good (no failure can be happening) and its failure-rate alert resolves after the usual
 *   good evaluations; while deliveries wait for their next attempt (retries backing off, followers
 *   behind a failing head) it stays unknown and its alert open: the receiver is still failing.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertRetention } from '../../src/pipeline/alerts/alert-retention.ts';
import { alertIdOf, getAlert, openCounts } from '../../src/pipeline/alerts/alert-store.ts';
import { webhookDeadLettersRule, webhookFailureRateRule } from '../../src/pipeline/alerts/rules/webhook-rules.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { insertDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { disableEndpoint, enableEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { evaluate, evaluatorOn } from '../helpers/alert-evaluation.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };

async function fixture() {
  const created = await createDeliveryFixture();
  onTestFinished(() => created.dispose());
  return created;
}

/** The endpoint's attempts in the window, as its worker processes would have added them; 0 attempts: none in the window. */
async function tally(db: Database, endpointId: string, attempts: number, failures: number): Promise<void> {
  await db.query('DELETE FROM webhook_attempt_tallies WHERE endpoint_id = $1', [endpointId]);
  if (attempts > 0) await db.query('INSERT INTO webhook_attempt_tallies (endpoint_id, span_start, attempts, failures) VALUES ($1, now(), $2, $3)', [endpointId, attempts, failures]);
}

const alertOf = (rule: string, endpointId: string) => alertIdOf({ rule, subject: `endpoint:${endpointId}`, scope: SCOPE });
const alertChanges = (events: readonly RealtimeEvent[]) => events.filter((event) => event.topic === 'system.alerts').map((event) => `${event.type} ${String(event.payload['rule'])}`);
const thresholds = { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 };

describe('a disabled webhook endpoint', () => {
  it('resolves its failure-rate and dead-letter alerts at once, saying it was disabled, and fires nothing more until enabled again', async () => {
    const ground = await fixture();
    const { db, endpointId } = ground;
    const rules = [webhookFailureRateRule(db, thresholds), webhookDeadLettersRule(db, { allowed: 0 })];
    const { evaluator, placed } = evaluatorOn(db, rules);
    await tally(db, endpointId, 10, 10);
    const { inserted } = await insertDeliveries(db, [ground.delivery('lane-1')]);
    await db.query("UPDATE webhook_deliveries SET state = 'dead', finished_at = now() WHERE id = ANY($1::bigint[])", [inserted]);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, alertOf('webhook.failure_rate', endpointId))).toMatchObject({ state: 'firing' });
    expect(await getAlert(db, alertOf('webhook.dead_letters', endpointId))).toMatchObject({ state: 'firing' });

    await disableEndpoint(db, endpointId, 'disabled by an admin');
    await evaluate(evaluator, 1);
    const message = `endpoint:${endpointId} disabled (disabled by an admin)`;
    expect(await getAlert(db, alertOf('webhook.failure_rate', endpointId))).toMatchObject({ state: 'resolved', message });
    expect(await getAlert(db, alertOf('webhook.dead_letters', endpointId))).toMatchObject({ state: 'resolved', message });
    expect(await openCounts(db)).toEqual([]);

    // Its failures and dead letters are still in the window: disabled, they fire nothing.
    await evaluate(evaluator, 3);
    expect(await openCounts(db)).toEqual([]);
    expect(alertChanges(placed).sort()).toEqual(['alert.fired webhook.dead_letters', 'alert.fired webhook.failure_rate', 'alert.resolved webhook.dead_letters', 'alert.resolved webhook.failure_rate']);

    // Resolved long ago, it is still kept: a disabled endpoint exists (retention deletes only the
    // alerts of subjects that no longer exist).
    await db.query("UPDATE alerts SET resolved_at = now() - interval '31 days'");
    const retention = createAlertRetention({ db, retentionMs: 30 * 86_400_000, windowMs: 300_000, now: Date.now, logger });
    expect(await retention.step(new Map(rules.map((rule) => [rule.name, rule])))).toBe(0);
    expect(await getAlert(db, alertOf('webhook.failure_rate', endpointId))).toMatchObject({ state: 'resolved' });

    // Enabled again and still failing: the same alert fires again (its count grows).
    await enableEndpoint(db, endpointId);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, alertOf('webhook.failure_rate', endpointId))).toMatchObject({ state: 'firing', count: 2 });
  });
});

describe('a webhook endpoint without attempts for a whole window', () => {
  it('reads good when nothing waits to be delivered to it: its failure-rate alert resolves, saying why', async () => {
    const { db, endpointId } = await fixture();
    const { evaluator, placed } = evaluatorOn(db, [webhookFailureRateRule(db, thresholds)]);
    await tally(db, endpointId, 10, 10);
    await evaluate(evaluator, 2);
    const id = alertOf('webhook.failure_rate', endpointId);
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing' });

    // Its traffic stopped: no attempt in the window, none pending.
    await tally(db, endpointId, 0, 0);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing' });
    await evaluate(evaluator, 1);
    expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', lastValue: 0, message: 'no webhook attempts in the window, and none waiting' });
    expect(await openCounts(db)).toEqual([]);
    expect(alertChanges(placed)).toEqual(['alert.fired webhook.failure_rate', 'alert.resolved webhook.failure_rate']);
  });

  it('stays unknown — its alert open — while deliveries wait for their next attempt, and resolves once none waits', async () => {
    const ground = await fixture();
    const { db, endpointId } = ground;
    const { evaluator } = evaluatorOn(db, [webhookFailureRateRule(db, thresholds)]);
    await tally(db, endpointId, 10, 10);
    await evaluate(evaluator, 2);
    const id = alertOf('webhook.failure_rate', endpointId);

    // A delivery backing off between attempts, past the window: still failing, as far as anyone knows.
    const { inserted } = await insertDeliveries(db, [ground.delivery('lane-1')]);
    await db.query("UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY($1::bigint[])", [inserted]);
    await tally(db, endpointId, 0, 0);
    await evaluate(evaluator, 5);
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing' });

    // Its retries ran out (dead-lettered): nothing waits any more.
    await db.query("UPDATE webhook_deliveries SET state = 'dead', finished_at = now() WHERE id = ANY($1::bigint[])", [inserted]);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', message: 'no webhook attempts in the window, and none waiting' });
  });
});
