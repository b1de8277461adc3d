/**
 * An open alert says what its figure is now: every bad evaluation refreshes its `lastValue` and
 * `message` (firing or acknowledged), without a change — no `system.alerts` event, no version, its
 * `lastChange` and count as they were. It used to keep the figure it first fired on for as long as
 * it stayed open ("4 open connections" on an alert about 40). Real Postgres, one evaluation at a time.
 */
import { randomUUID } from 'node:crypto';
import { expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule, Verdict } from '../../src/pipeline/alerts/alert-rule.ts';
import { acknowledgeAlert, alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };

const connections = (count: number): Verdict => ({ kind: 'bad', severity: 'warning', value: count, message: `${count} open connections (limit 3)` });

it('refreshes an open alert’s value and message on every bad evaluation, acknowledged or not, without announcing a change', async () => {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  let verdict = connections(4);
  const rule: AlertRule = { name: 'test.connections', description: 'connections', read: () => Promise.resolve([{ subject: 'cluster', scope: SCOPE, verdict }]) };
  const placed: RealtimeEvent[] = [];
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const router = createEventRouter({ log, logger, afterPlaced: (events) => (placed.push(...events), Promise.resolve()) });
  const evaluator = createAlertEvaluator({ db, router, rules: [rule], policy: { fireAfter: 2, resolveAfter: 3 }, windowMs: 300_000, holder: randomUUID(), leaseMs: 60_000, logger });
  const id = alertIdOf({ rule: 'test.connections', subject: 'cluster', scope: SCOPE });

  await evaluator.evaluate();
  await evaluator.evaluate();
  const fired = await getAlert(db, id);
  expect(fired).toMatchObject({ state: 'firing', lastValue: 4, message: '4 open connections (limit 3)', lastChange: 'fired', count: 1 });

  verdict = connections(40);
  await evaluator.evaluate();
  expect(await getAlert(db, id)).toMatchObject({ state: 'firing', lastValue: 40, message: '40 open connections (limit 3)', lastChange: 'fired', count: 1, version: fired?.version });

  await acknowledgeAlert(db, id, 'ops');
  verdict = connections(12);
  await evaluator.evaluate();
  expect(await getAlert(db, id)).toMatchObject({ state: 'acknowledged', lastValue: 12, message: '12 open connections (limit 3)', lastChange: 'acknowledged' });

  // Announced: the firing and the acknowledgement (routed by the evaluation after it), nothing else.
  expect(placed.filter((event) => event.topic === 'system.alerts').map((event) => event.type)).toEqual(['alert.fired', 'alert.acknowledged']);
  expect(Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM alert_changes')).rows[0]?.n)).toBe(0);
});
