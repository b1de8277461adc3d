/**
 * Alert evaluation in the workers role: every `ALERTS_EVALUATE_SECONDS` (the seed's 5 s tick) the
 * rules are evaluated by whichever workers process holds the evaluator's lease — one at a time
 * cluster-wide, another taking over when it stops or stalls (`pipeline/alerts/alert-evaluator.ts`).
 * Every workers process reads the open alerts' counts for `tributary_alerts_open` (and `_firing`).
 */
import { randomUUID } from 'node:crypto';
import type { AlertsConfig } from '../config-alerts.ts';
import type { Database, Queryable } from '../db/database.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { AlertsOpenSample, Metrics } from '../metrics.ts';
import { createAlertEvaluator, type Evaluation } from '../pipeline/alerts/alert-evaluator.ts';
import type { AlertRule } from '../pipeline/alerts/alert-rule.ts';
import { openCounts } from '../pipeline/alerts/alert-store.ts';
import { BUILT_IN_RULES } from '../pipeline/alerts/rule-names.ts';
import { releaseEvaluatorLease } from '../pipeline/alerts/evaluator-lease.ts';
import { cdcRules } from '../pipeline/alerts/rules/cdc-rules.ts';
import { clusterRules, NO_CLUSTER_FIGURES, type ClusterFiguresProvider } from '../pipeline/alerts/rules/cluster-rules.ts';
import { outboxBacklogRule, outboxDeadRowsRule } from '../pipeline/alerts/rules/outbox-rules.ts';
import { webhookDeadLettersRule, webhookEndpointDisabledRule, webhookFailureRateRule } from '../pipeline/alerts/rules/webhook-rules.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';
import { settledWithin } from '../pipeline/coordination/within.ts';

export interface AlertEvaluationOptions {
  readonly config: AlertsConfig;
  /** Where cluster-wide alerts live (`OPERATOR_SCOPE`). */
  readonly operatorScope: { readonly app: string; readonly env: string };
  readonly db: Database;
  readonly router: Pick<EventRouter, 'route'>;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'sample'>;
  /** Cluster-wide instance figures (connections, resyncs): the dashboard's instance reports. @default none: the cluster rules read unknown */
  readonly cluster?: ClusterFiguresProvider;
}

export interface AlertEvaluation {
  /** Runs one evaluation now, then reads the open alerts' counts for `/metrics` (tests, and the timer). */
  evaluate(): Promise<Evaluation>;
  /**
   * Stops the timer and waits for the evaluation in flight, at most `waitMs` (@default no limit),
   * then hands the lease over. An evaluation still running then (a lock it waits on, a database
   * that does not answer) is left to end on its own, and its lease to expire. Idempotent.
   */
  close(waitMs?: number): Promise<void>;
}

/** Every rule, with the thresholds of the configuration (the built-in rules: `rule-names.ts` lists their names). */
export function alertRules(config: AlertsConfig, operatorScope: AlertEvaluationOptions['operatorScope'], db: Queryable, cluster: ClusterFiguresProvider): AlertRule[] {
  return [
    webhookFailureRateRule(db, { minSamples: config.minSamples, criticalRatio: config.webhookFailureCriticalRatio, warningRatio: config.webhookFailureWarningRatio }),
    webhookDeadLettersRule(db, { allowed: config.deadLettersAllowed }),
    webhookEndpointDisabledRule(db),
    outboxBacklogRule(db, { maxAgeSeconds: config.outboxMaxAgeSeconds }),
    outboxDeadRowsRule(db, { allowed: config.outboxDeadRowsAllowed }),
    ...cdcRules(db, {
      maxLagBytes: config.cdcMaxLagBytes,
      maxRetainedWalBytes: config.cdcMaxRetainedWalBytes,
      unroutableRowsAllowed: config.cdcUnroutableRowsAllowed,
      slotSafeWalPercent: config.cdcSlotSafeWalPercent,
    }),
    ...clusterRules(cluster, { ...operatorScope, tenant: undefined }, { maxConnections: config.maxConnections, maxResyncs: config.maxResyncs }),
  ];
}

export function startAlertEvaluation(options: AlertEvaluationOptions): AlertEvaluation {
  const { config, db } = options;
  const logger = componentLogger(options.logger, 'alerts');
  const holder = randomUUID();
  const evaluator = createAlertEvaluator({
    db,
    router: options.router,
    rules: alertRules(config, options.operatorScope, db, options.cluster ?? NO_CLUSTER_FIGURES),
    policy: { fireAfter: config.fireAfter, resolveAfter: config.resolveAfter },
    windowMs: config.windowMs,
    holder,
    // Outlives a few missed ticks, so a busy evaluator keeps it; a dead one is replaced after it.
    // An evaluation slower than this is still written when no other process took the lease over.
    leaseMs: config.evaluateMs * 3 + 2000,
    logger,
  });
  /** Undefined until the first count: the gauges export nothing rather than 0s while alerts may be open in the database. */
  let open: AlertsOpenSample[] | undefined;
  const stopSampling = options.metrics.sample({ alertsOpen: () => open ?? [] });

  let running: Promise<unknown> | undefined;
  // Counted after every evaluation, whoever holds the lease: every workers process exports the
  // same figure, and one acknowledged through the API since shows in its state at the next tick.
  const tick = async (): Promise<Evaluation> => {
    try {
      return await evaluator.evaluate();
    } finally {
      open = withEveryRule(await openCounts(db));
    }
  };
  const timer = setInterval(() => {
    // A slow evaluation is not overlapped by the next tick: that tick is skipped.
    if (running) return;
    running = tick()
      .catch((error: unknown) => logger.warn({ err: error }, 'alert evaluation failed'))
      .finally(() => (running = undefined));
  }, config.evaluateMs);
  timer.unref();
  logger.info({ everyMs: config.evaluateMs, windowMs: config.windowMs }, 'alert evaluation started');

  /** Whether the evaluation in flight (which never rejects) has ended within `waitMs` (without a limit: once it has). */
  const evaluationEnded = async (waitMs: number | undefined): Promise<boolean> => {
    if (running === undefined) return true;
    if (waitMs === undefined) {
      await running;
      return true;
    }
    return settledWithin(running, waitMs);
  };

  let closing: Promise<void> | undefined;
  return {
    evaluate: tick,
    close(waitMs) {
      closing ??= (async () => {
        clearInterval(timer);
        stopSampling();
        if (!(await evaluationEnded(waitMs))) {
          // Releasing now would wait on what holds the evaluation, and hand the rules to another
          // process while this one may still write its outcome: the lease expires instead.
          logger.warn({ waitMs }, 'alert evaluation still running at shutdown: left to end, its lease to expire');
          return;
        }
        // Handing over at once: another process evaluates at its next tick, not after the lease.
        await releaseEvaluatorLease(db, holder).catch((error: unknown) => logger.warn({ err: error }, 'alert evaluator lease not released'));
      })();
      return closing;
    },
  };
}

/**
 * The open alerts' counts with every built-in rule (`rule-names.ts`), both severities and both open
 * states, at 0 where none is open: a Prometheus rule such as `sum(…) == 0`, or a panel, would read
 * "no data" exactly when all is well if the series came only with an open alert.
 */
function withEveryRule(counts: readonly AlertsOpenSample[]): AlertsOpenSample[] {
  const key = (sample: Pick<AlertsOpenSample, 'rule' | 'severity' | 'state'>) => `${sample.rule} ${sample.severity} ${sample.state}`;
  const known = new Set(counts.map(key));
  const zeros = BUILT_IN_RULES.flatMap((rule) =>
    (['warning', 'critical'] as const).flatMap((severity) => (['firing', 'acknowledged'] as const).map((state) => ({ rule, severity, state, count: 0 }))),
  ).filter((sample) => !known.has(key(sample)));
  return [...counts, ...zeros];
}
