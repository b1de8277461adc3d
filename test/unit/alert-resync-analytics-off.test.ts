/**
 * `ANALYTICS_ENABLED=false` counts no resyncs: an instance reporting so makes the resync-storm rule
 * read unknown (its 0 is no figure), not a good 0 for ever; once every instance counts again the
 * rule reads the sum. The reporters are the real ones, with the figures startAnalytics gives them.
 */
import { expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { clusterRules } from '../../src/pipeline/alerts/rules/cluster-rules.ts';
import { InstanceTotals } from '../../src/pipeline/analytics/instance-figures.ts';
import { createClusterFigures } from '../../src/pipeline/dashboard/cluster-figures.ts';
import { startDashboardReporter } from '../../src/pipeline/dashboard/dashboard-reporter.ts';
import { createMemoryReportStore } from '../../src/pipeline/dashboard/report-store.ts';

const logger = createLogger({ level: 'silent' });
const OPERATORS = { app: 'default', env: 'default' };
const WINDOW_MS = 300_000;
const TICK_MS = 5_000;

it('reads the resync storm unknown while an instance has analytics off, and the sum once none has', async () => {
  let time = 1_000_000;
  const now = () => time;
  const store = createMemoryReportStore({ ttlMs: 3 * TICK_MS, now });
  const reporterWith = (figures: InstanceTotals) =>
    startDashboardReporter({
      role: 'server',
      figures,
      live: () => Promise.resolve({ connections: 5, subscriptions: 5, cdcReaders: [], outboxes: [], webhookBacklogs: [], slowConsumerCloses: 0 }),
      store,
      router: { route: () => Promise.resolve({}) as never },
      operatorScope: OPERATORS,
      tickMs: TICK_MS,
      resyncWindowMs: WINDOW_MS,
      now,
      logger,
    });
  const countingFigures = new InstanceTotals(true, now);
  const counting = reporterWith(countingFigures);
  const off = reporterWith(new InstanceTotals(false, now));
  const [, storm] = clusterRules(createClusterFigures({ store, now, tickMs: TICK_MS, logger }), { ...OPERATORS, tenant: undefined }, { maxConnections: 10_000, maxResyncs: 1_000 });
  const verdict = async () => (await storm!.read({ windowMs: WINDOW_MS, watched: [] }))[0]?.verdict;

  for (let tick = 0; tick < 2; tick += 1) {
    countingFigures.resyncs += 600;
    await counting.report();
    await off.report();
    time += TICK_MS;
  }
  expect(await verdict()).toMatchObject({ kind: 'unknown' });

  // The instance with analytics off stops (a restart with it on): the storm is judged again.
  await off.close();
  expect(await verdict()).toMatchObject({ kind: 'bad', value: 1_200 });
  await counting.close();
});
