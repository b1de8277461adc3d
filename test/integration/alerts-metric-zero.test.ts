/**
 * `tributary_alerts_open` and `tributary_alerts_firing` when nothing is open, on a real Postgres:
 * a process that reads the open alerts (the workers' evaluation) exports every built-in rule at 0,
 * so a Prometheus rule or panel on them reads 0 — not "no data" — when all is well, and the rule
 * whose alert fires goes to 1 beside the others' 0. A process that reads no alerts (a server)
 * exports no sample rather than claim 0. The list of built-in rules is the rules' own names.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { Queryable } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { BUILT_IN_RULES } from '../../src/pipeline/alerts/rule-names.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { alertRules, startAlertEvaluation } from '../../src/workers/alerts.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const OPERATORS = { app: 'app', env: 'env' };

/** The samples of `name` in a `/metrics` text, as `labels → value`. */
function samplesOf(text: string, name: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) samples.set(match[2] ?? '', Number(match[3]));
  }
  return samples;
}

/** Every built-in rule at 0, as the gauges label them, with `set` on top. */
function zeros(set: Readonly<Record<string, number>> = {}) {
  const open = new Map<string, number>();
  const firing = new Map<string, number>();
  for (const rule of BUILT_IN_RULES) {
    for (const severity of ['warning', 'critical']) {
      firing.set(`{rule="${rule}",severity="${severity}"}`, 0);
      for (const state of ['firing', 'acknowledged']) open.set(`{rule="${rule}",severity="${severity}",state="${state}"}`, 0);
    }
  }
  for (const [labels, value] of Object.entries(set)) (labels.includes('state=') ? open : firing).set(labels, value);
  return { open, firing };
}

describe('alert gauges when nothing is open', () => {
  it('export every built-in rule at 0 where the alerts are read, the firing one at 1, and nothing where they are not', async () => {
    const deliveries = await createDeliveryFixture();
    onTestFinished(() => deliveries.dispose());
    const { db } = deliveries;
    const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
    onTestFinished(() => log.close());
    const router = createEventRouter({ log, logger });
    let connections = 0;
    // The defaults but for these (loadConfig parses them as the process does).
    const config = loadConfig({ ALERTS_EVALUATE_SECONDS: '3600', ALERTS_WINDOW_SECONDS: '7200', ALERTS_CDC_MAX_LAG_BYTES: '1024', ALERTS_CDC_MAX_RETAINED_WAL_BYTES: '1024', ALERTS_MAX_CONNECTIONS: '3' }).alerts;
    const server = createMetrics({ processMetrics: false });
    const workers = createMetrics({ processMetrics: false });
    const cluster = { read: () => Promise.resolve({ connections, resyncs: 0 }) };
    const evaluation = startAlertEvaluation({ config, operatorScope: OPERATORS, db, router, logger, metrics: workers, cluster });
    onTestFinished(() => evaluation.close());
    const scrape = async (metrics: typeof workers) => {
      const text = await metrics.registry.metrics();
      return { open: samplesOf(text, 'tributary_alerts_open'), firing: samplesOf(text, 'tributary_alerts_firing') };
    };

    await evaluation.evaluate();
    expect(await scrape(workers)).toEqual(zeros());
    expect(await scrape(server)).toEqual({ open: new Map(), firing: new Map() });

    connections = 6;
    await evaluation.evaluate();
    await evaluation.evaluate();
    expect(await scrape(workers)).toEqual(
      zeros({ '{rule="cluster.connections",severity="warning",state="firing"}': 1, '{rule="cluster.connections",severity="warning"}': 1 }),
    );
  });

  it('lists the built-in rules by their own names', () => {
    // Building a rule reads nothing.
    const db: Queryable = { query: () => Promise.reject(new Error('not read')), exec: () => Promise.reject(new Error('not run')) };
    const rules = alertRules(loadConfig({}).alerts, OPERATORS, db, { read: () => Promise.resolve(undefined) });
    expect(rules.map((rule) => rule.name).sort()).toEqual([...BUILT_IN_RULES].sort());
  });
});
