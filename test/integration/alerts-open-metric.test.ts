/**
 * What Prometheus sees of Tributary's own alerts, on a real Postgres, one evaluation at a time (the
 * timer never ticks: a tick an hour): `tributary_alerts_open{rule,severity,state}` counts an alert
 * until it resolves — acknowledging it changes its state, not whether it is open, so an
 * Alertmanager rule on it does not resolve while the problem goes on, and an acknowledged warning
 * that escalates shows as critical. A resolved alert says why, with its good figure, in the
 * database, the API and its `system.alerts` event.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule, Verdict } from '../../src/pipeline/alerts/alert-rule.ts';
import { acknowledgeAlert, alertIdOf, getAlert, openCounts } from '../../src/pipeline/alerts/alert-store.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { startAlertEvaluation } from '../../src/workers/alerts.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const OPERATORS = { app: 'app', env: 'env' };

/** A platform database of the test's own, and a router whose placed events land in `placed`. */
async function fixture() {
  const deliveries = await createDeliveryFixture();
  onTestFinished(() => deliveries.dispose());
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const placed: RealtimeEvent[] = [];
  const router = createEventRouter({ log, logger, afterPlaced: (events) => (placed.push(...events), Promise.resolve()) });
  return { db: deliveries.db, router, placed };
}

/** The samples of `name` in a `/metrics` text, as `labels → value` (labels as written, `{…}` or ''). */
function samplesOf(text: string, name: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) samples.set(match[2] ?? '', Number(match[3]));
  }
  return samples;
}

describe('tributary_alerts_open', () => {
  it('counts an acknowledged alert as open until its figure is good again, which resolves it saying so', async () => {
    const { db, router, placed } = await fixture();
    let connections = 6;
    // The defaults but for these (loadConfig parses them as the process does).
    const config = loadConfig({ ALERTS_EVALUATE_SECONDS: '3600', ALERTS_WINDOW_SECONDS: '300', ALERTS_CDC_MAX_LAG_BYTES: '1024', ALERTS_CDC_MAX_RETAINED_WAL_BYTES: '1024', ALERTS_MAX_CONNECTIONS: '3' }).alerts;
    const metrics = createMetrics({ processMetrics: false });
    const cluster = { read: () => Promise.resolve({ connections, resyncs: 0 }) };
    const evaluation = startAlertEvaluation({ config, operatorScope: OPERATORS, db, router, logger, metrics, cluster });
    onTestFinished(() => evaluation.close());
    // Every built-in rule is exported, at 0 while none of its alerts is open (alerts-metric-zero.test.ts): the others here.
    const scrape = async () => {
      const text = await metrics.registry.metrics();
      const open = (samples: Map<string, number>) => new Map([...samples].filter(([, value]) => value !== 0));
      return { open: open(samplesOf(text, 'tributary_alerts_open')), firing: open(samplesOf(text, 'tributary_alerts_firing')) };
    };
    const id = alertIdOf({ rule: 'cluster.connections', subject: 'cluster', scope: { ...OPERATORS, tenant: undefined } });

    await evaluation.evaluate();
    await evaluation.evaluate();
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing', message: '6 open connections (limit 3)' });
    expect(await scrape()).toEqual({
      open: new Map([['{rule="cluster.connections",severity="warning",state="firing"}', 1]]),
      firing: new Map([['{rule="cluster.connections",severity="warning"}', 1]]),
    });

    // Someone is on it; the sockets are still over the limit. It is no longer firing, but open.
    expect(await acknowledgeAlert(db, id, 'ops')).toMatchObject({ state: 'acknowledged' });
    await evaluation.evaluate();
    expect(await scrape()).toEqual({
      open: new Map([['{rule="cluster.connections",severity="warning",state="acknowledged"}', 1]]),
      firing: new Map(),
    });

    connections = 0;
    for (let good = 0; good < 3; good += 1) await evaluation.evaluate();
    const resolved = await getAlert(db, id);
    expect(resolved).toMatchObject({ state: 'resolved', lastValue: 0, message: 'back within limit: 0 open connections (limit 3)' });
    expect(await scrape()).toEqual({ open: new Map(), firing: new Map() });
    // What a `system.alerts` webhook receives: the alert as the change left it.
    const announced = placed.filter((event) => event.type === 'alert.resolved').map((event) => event.payload);
    expect(announced).toEqual([expect.objectContaining({ state: 'resolved', value: 0, message: 'back within limit: 0 open connections (limit 3)' })]);
  });

  it('counts an acknowledged warning that escalates as an open critical one', async () => {
    const { db, router } = await fixture();
    const scope = { app: 'app', env: 'env', tenant: undefined };
    let verdict: Verdict = { kind: 'bad', severity: 'warning', value: 30, message: 'lag is 30 B (limit 20 B)' };
    const rule: AlertRule = { name: 'test.lag', description: 'a figure the test sets', read: () => Promise.resolve([{ subject: 'cdc:src', scope, verdict }]) };
    const evaluator = createAlertEvaluator({ db, router, rules: [rule], policy: { fireAfter: 2, resolveAfter: 3 }, windowMs: 300_000, holder: randomUUID(), leaseMs: 60_000, logger });
    const id = alertIdOf({ rule: rule.name, subject: 'cdc:src', scope });
    await evaluator.evaluate();
    await evaluator.evaluate();
    await acknowledgeAlert(db, id, 'ops');
    verdict = { kind: 'bad', severity: 'critical', value: 90, message: 'lag is 90 B (limit 20 B)' };
    await evaluator.evaluate();
    await evaluator.evaluate();
    expect(await getAlert(db, id)).toMatchObject({ state: 'acknowledged', severity: 'critical', lastChange: 'escalated' });
    expect(await openCounts(db)).toEqual([{ rule: 'test.lag', severity: 'critical', state: 'acknowledged', count: 1 }]);
  });
});
