/**
 * The alert evaluator on a real Postgres, driven one evaluation at a time (no timer): figures are
 * written where the rules read them, and every routed event is taken from the router's
 * `afterPlaced`, once it is in the log.
 *
 * - A subject that no longer exists (a webhook endpoint deleted, an outbox source removed, a cluster
 *   alert left in an earlier OPERATOR_SCOPE) resolves its alert at once; a subject without a
 *   figure, or a rule that cannot be read, resolves nothing. Such an alert is deleted once it has
 *   been resolved for longer than the retention; an alert whose subject exists is kept.
 * - Every change is announced, in order, even when routing failed for the whole of an alert's
 *   life: the log is a real Redis, stopped and started again. A change the previous schema had
 *   not announced is announced after the upgrade.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator, type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule } from '../../src/pipeline/alerts/alert-rule.ts';
import { alertIdOf, fireAlert, getAlert, listTrackers, resolveAlert, type AlertKey } from '../../src/pipeline/alerts/alert-store.ts';
import { cdcRules } from '../../src/pipeline/alerts/rules/cdc-rules.ts';
import { clusterRules } from '../../src/pipeline/alerts/rules/cluster-rules.ts';
import { outboxBacklogRule } from '../../src/pipeline/alerts/rules/outbox-rules.ts';
import { webhookFailureRateRule } from '../../src/pipeline/alerts/rules/webhook-rules.ts';
import { createClusterFigures } from '../../src/pipeline/dashboard/cluster-figures.ts';
import { zeroCounts } from '../../src/pipeline/dashboard/instance-report.ts';
import { createMemoryReportStore } from '../../src/pipeline/dashboard/report-store.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { insertDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { deleteEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { closeRedis, createRedisClient } from '../../src/redis-clients.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { migrateBefore } from '../helpers/migrate-before.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { createTestDatabase, startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const RETENTION = { maxEvents: 1_000, maxAgeMs: 3_600_000 };
const SCOPE = { app: 'app', env: 'env', tenant: undefined };

/** A platform database of the test's own (app `app`, env `env`, one endpoint), disposed after it. */
async function freshFixture() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  return fixture;
}

/** An evaluator over `rules` whose routed events land in `placed`, in the order they were placed. */
function evaluatorOn(db: Database, log: EventLog, rules: AlertRule[], evaluatorLogger = logger): { evaluator: AlertEvaluator; placed: RealtimeEvent[] } {
  const placed: RealtimeEvent[] = [];
  const router = createEventRouter({ log, logger, afterPlaced: (events) => (placed.push(...events), Promise.resolve()) });
  const evaluator = createAlertEvaluator({ db, router, rules, policy: { fireAfter: 2, resolveAfter: 3 }, windowMs: 300_000, holder: randomUUID(), leaseMs: 60_000, logger: evaluatorLogger });
  return { evaluator, placed };
}

function memoryLog(): EventLog {
  const log = createMemoryLog({ retention: RETENTION, publish: () => {} });
  onTestFinished(() => log.close());
  return log;
}

async function evaluate(evaluator: AlertEvaluator, times: number): Promise<void> {
  for (let done = 0; done < times; done += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
}

/** The endpoint's attempts in the window, as its worker processes would have added them. */
async function tally(db: Database, endpointId: string, attempts: number, failures: number): Promise<void> {
  await db.query('DELETE FROM webhook_attempt_tallies WHERE endpoint_id = $1', [endpointId]);
  if (attempts > 0) await db.query('INSERT INTO webhook_attempt_tallies (endpoint_id, span_start, attempts, failures) VALUES ($1, now(), $2, $3)', [endpointId, attempts, failures]);
}

const failureRateAlertOf = (endpointId: string) => alertIdOf({ rule: 'webhook.failure_rate', subject: `endpoint:${endpointId}`, scope: SCOPE });
const alertTypes = (events: readonly RealtimeEvent[]) => events.filter((event) => event.topic === 'system.alerts').map((event) => `${event.type} ${String(event.payload['subject'])}`);

describe('the alert evaluator’s log', () => {
  it('says each change in a line of its own: the rule, the subject, what changed and the figure, with the evaluating process', async () => {
    const fixture = await freshFixture();
    const logs = captureLogs();
    const { evaluator } = evaluatorOn(fixture.db, memoryLog(), [webhookFailureRateRule(fixture.db, { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 })], createLogger({ destination: logs }));
    await tally(fixture.db, fixture.endpointId, 10, 3);
    await evaluate(evaluator, 2);

    const changes = logs.lines.filter((line) => line['change'] !== undefined);
    expect(changes).toEqual([
      expect.objectContaining({
        level: 30,
        component: 'alerts',
        holder: expect.any(String) as unknown,
        rule: 'webhook.failure_rate',
        subject: `endpoint:${fixture.endpointId}`,
        change: 'fired',
        severity: 'warning',
        value: 0.3,
        msg: expect.stringContaining('alert fired: webhook.failure_rate') as unknown,
      }),
    ]);
  });
});

describe('an alert whose subject no longer exists', () => {
  it('resolves once its webhook endpoint is deleted, while one whose endpoint has no attempts but a delivery waiting stays open, and nothing resolves while the rule cannot be read', async () => {
    const fixture = await freshFixture();
    const { db } = fixture;
    const deleted = fixture.endpointId;
    const quiet = await fixture.endpoint('quiet');
    const { evaluator, placed } = evaluatorOn(db, memoryLog(), [webhookFailureRateRule(db, { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 })]);

    // Both endpoints failing: both alerts fire after two bad evaluations.
    await tally(db, deleted, 10, 10);
    await tally(db, quiet, 10, 10);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, failureRateAlertOf(deleted))).toMatchObject({ state: 'firing' });
    expect(await getAlert(db, failureRateAlertOf(quiet))).toMatchObject({ state: 'firing' });

    // One endpoint is deleted; the other's attempts leave the window while a delivery waits for
    // its next attempt (no figure, and still failing as far as anyone knows: unknown).
    expect(await deleteEndpoint(db, deleted)).toBe(true);
    await tally(db, quiet, 0, 0);
    await insertDeliveries(db, [{ ...fixture.delivery('lane-q'), endpointId: quiet }]);
    // While the rule cannot be read, nothing is known: the deleted endpoint's alert stays open.
    await db.query('ALTER TABLE webhook_attempt_tallies RENAME TO webhook_attempt_tallies_away');
    try {
      await evaluate(evaluator, 1);
    } finally {
      await db.query('ALTER TABLE webhook_attempt_tallies_away RENAME TO webhook_attempt_tallies');
    }
    expect(await getAlert(db, failureRateAlertOf(deleted))).toMatchObject({ state: 'firing' });

    // Read again: the deleted endpoint is gone — resolved at once, saying why, its streaks dropped.
    await evaluate(evaluator, 1);
    const resolved = await getAlert(db, failureRateAlertOf(deleted));
    expect(resolved).toMatchObject({ state: 'resolved', count: 1, lastValue: 1, message: `endpoint:${deleted} no longer exists` });
    expect(resolved?.resolvedAt).toBeInstanceOf(Date);
    expect((await listTrackers(db, 100)).map((tracker) => tracker.subject)).toEqual([`endpoint:${quiet}`]);

    // The endpoint without a figure, its delivery waiting, is unknown however long: its alert stays open.
    await evaluate(evaluator, 3);
    expect(await getAlert(db, failureRateAlertOf(quiet))).toMatchObject({ state: 'firing' });
    expect(alertTypes(placed).sort()).toEqual([`alert.fired endpoint:${deleted}`, `alert.fired endpoint:${quiet}`, `alert.resolved endpoint:${deleted}`].sort());
  });

  it('resolves an outbox backlog alert once its outbox source is removed', async () => {
    const { db } = await freshFixture();
    const { evaluator, placed } = evaluatorOn(db, memoryLog(), [outboxBacklogRule(db, { maxAgeSeconds: 60 })]);
    await db.query(
      `INSERT INTO outbox_sources (app, env, outbox_id, database_url, table_name, requested_mode, oldest_pending_seconds, reported_at)
       VALUES ('app', 'env', 'ob_test', 'postgres://outbox.example/app', 'event_outbox', 'POLL', 600, now())`,
    );
    await evaluate(evaluator, 2);
    const id = alertIdOf({ rule: 'outbox.backlog_age', subject: 'outbox:app/env', scope: SCOPE });
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing' });

    await db.query("DELETE FROM outbox_sources WHERE app = 'app' AND env = 'env'");
    await evaluate(evaluator, 1);
    expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', message: 'outbox:app/env no longer exists' });
    expect(alertTypes(placed)).toEqual(['alert.fired outbox:app/env', 'alert.resolved outbox:app/env']);
  });

  it('resolves a CDC alert once its environment no longer has a CDC source, though the source’s status still names it', async () => {
    const { db, evaluator, placed, id } = await firingCdcLag('src1', ['env']);
    await db.query("DELETE FROM cdc_sources WHERE app = 'app' AND env = 'env'");
    await evaluate(evaluator, 1);
    expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', message: 'cdc:src1 no longer exists' });
    expect(alertTypes(placed)).toEqual(['alert.fired cdc:src1', 'alert.resolved cdc:src1']);
  });

  // An environment switched to another source database: the old source's leader stops (its status
  // goes stale, still listing the environment), or goes on for other environments without it.
  it.each(['goes stale', 'goes on without the environment'] as const)(
    'resolves the old source’s CDC alert once the environment reads another source, whose fresh status lists it (the old status %s)',
    async (old) => {
      const { db, evaluator, placed, id } = await firingCdcLag('old', ['env', 'other']);
      await db.query("UPDATE cdc_sources SET database_url = 'postgres://new.example/app' WHERE app = 'app' AND env = 'env'");
      if (old === 'goes stale') await db.query("UPDATE cdc_reader_status SET updated_at = now() - interval '1 day' WHERE source = 'old'");
      else await db.query("UPDATE cdc_reader_status SET environments = $1 WHERE source = 'old'", [environmentsOf(['other'])]);
      await db.query(
        `INSERT INTO cdc_reader_status (source, state, lag_bytes, retained_wal_bytes, environments) VALUES ('new', 'streaming', 10, 10, $1)`,
        [environmentsOf(['env'])],
      );
      await evaluate(evaluator, 1);
      expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', message: 'cdc:old no longer exists' });
      expect(alertTypes(placed)).toEqual(['alert.fired cdc:old', 'alert.resolved cdc:old']);
    },
  );

  it('keeps a CDC alert unknown, not resolved, while its source’s status is stale and no other source reads the environment (cdc.reader_down fires)', async () => {
    const { db, evaluator, placed, id } = await firingCdcLag('src1', ['env']);
    await db.query("UPDATE cdc_reader_status SET updated_at = now() - interval '1 day' WHERE source = 'src1'");
    await evaluate(evaluator, 3);
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing' });
    // Nobody reads the source: an alert of its own, beside the lag alert left as it was.
    expect(await getAlert(db, alertIdOf({ rule: 'cdc.reader_down', subject: 'cdc:src1', scope: SCOPE }))).toMatchObject({ state: 'firing' });
    expect(alertTypes(placed)).toEqual(['alert.fired cdc:src1', 'alert.fired cdc:src1']);
  });
});

describe('alerts kept', () => {
  it('resolves a cluster alert left in an earlier operators’ environment, and deletes alerts resolved over 30 days ago whose subject is gone, keeping the rest', async () => {
    const fixture = await freshFixture();
    const { db } = fixture;
    const existing = fixture.endpointId;
    const deleted = await fixture.endpoint('deleted');
    expect(await deleteEndpoint(db, deleted)).toBe(true);
    // One server reporting: the cluster rules read the operators' environment `ops/prod`.
    const store = createMemoryReportStore({ ttlMs: 60_000, now: Date.now });
    await store.put({
      instance: 'server', role: 'server', startedAt: Date.now(), at: Date.now(), intervalMs: 0, connections: 1, subscriptions: 0,
      cdcReaders: [], outboxes: [], webhookBacklogs: [], interval: zeroCounts(), totals: zeroCounts(), countsEnabled: true,
    });
    const operators = { app: 'ops', env: 'prod', tenant: undefined };
    const { evaluator, placed } = evaluatorOn(db, memoryLog(), [
      webhookFailureRateRule(db, { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 }),
      ...clusterRules(createClusterFigures({ store, now: Date.now, tickMs: 5_000, logger }), operators, { maxConnections: 10, maxResyncs: 10 }),
    ]);
    /** An alert fired, resolved `resolvedDaysAgo` days ago (undefined: left open). */
    const alert = async (key: AlertKey, resolvedDaysAgo?: number) => {
      const id = alertIdOf(key);
      await fireAlert(db, { ...key, severity: 'warning', value: 1, message: 'bad' });
      if (resolvedDaysAgo !== undefined) {
        await resolveAlert(db, id, 0);
        await db.query("UPDATE alerts SET resolved_at = now() - make_interval(days => $2) WHERE id = $1", [id, resolvedDaysAgo]);
      }
      return id;
    };
    const endpointAlert = (endpointId: string) => ({ rule: 'webhook.failure_rate', subject: `endpoint:${endpointId}`, scope: SCOPE });
    const earlierOperators = { app: 'ops', env: 'old', tenant: undefined };
    const goneLongAgo = await alert(endpointAlert(deleted), 31);
    const existsLongAgo = await alert(endpointAlert(existing), 31);
    const goneLately = await alert({ rule: 'webhook.dead_letters', subject: `endpoint:${deleted}`, scope: SCOPE }, 29);
    const ruleNotRun = await alert({ rule: 'retired.rule', subject: 'cluster', scope: SCOPE }, 31);
    const leftOpen = await alert({ rule: 'cluster.connections', subject: 'cluster', scope: earlierOperators });
    const leftLongAgo = await alert({ rule: 'cluster.resync_storm', subject: 'cluster', scope: earlierOperators }, 31);
    const operatorsNow = await alert({ rule: 'cluster.resync_storm', subject: 'cluster', scope: operators }, 31);
    // Their changes were announced when they were made.
    await db.query('DELETE FROM alert_changes');

    await evaluate(evaluator, 1);
    // Gone, and resolved over 30 days ago: deleted.
    expect(await getAlert(db, goneLongAgo)).toBeUndefined();
    expect(await getAlert(db, leftLongAgo)).toBeUndefined();
    // Its subject exists, it resolved lately, or its rule is not run here: kept.
    expect(await getAlert(db, existsLongAgo)).toMatchObject({ state: 'resolved' });
    expect(await getAlert(db, goneLately)).toMatchObject({ state: 'resolved' });
    expect(await getAlert(db, ruleNotRun)).toMatchObject({ state: 'resolved' });
    expect(await getAlert(db, operatorsNow)).toMatchObject({ state: 'resolved' });
    // The cluster alert open in the earlier operators' environment resolves at once.
    expect(await getAlert(db, leftOpen)).toMatchObject({ state: 'resolved', message: 'cluster no longer exists' });
    expect(alertTypes(placed)).toEqual(['alert.resolved cluster']);
  });
});

/** The `environments` of a reader's status: app `app`'s `envs`. */
function environmentsOf(envs: readonly string[]): string {
  return JSON.stringify(envs.map((env) => ({ app: 'app', env })));
}

/**
 * app/env reads its CDC source, whose reader (`source`, also read by `envs`) reports a lag over
 * the threshold: `cdc.lag` fires on `cdc:<source>` in app/env.
 */
async function firingCdcLag(source: string, envs: readonly string[]) {
  const { db } = await freshFixture();
  const { evaluator, placed } = evaluatorOn(db, memoryLog(), cdcRules(db, { maxLagBytes: 1_000, maxRetainedWalBytes: 1_000_000 }));
  await db.query("INSERT INTO cdc_sources (app, env, database_url) VALUES ('app', 'env', 'postgres://source.example/app')");
  await db.query(`INSERT INTO cdc_reader_status (source, state, lag_bytes, retained_wal_bytes, environments) VALUES ($1, 'streaming', 5000, 10, $2)`, [source, environmentsOf(envs)]);
  await evaluate(evaluator, 2);
  const id = alertIdOf({ rule: 'cdc.lag', subject: `cdc:${source}`, scope: SCOPE });
  expect(await getAlert(db, id)).toMatchObject({ state: 'firing' });
  return { db, evaluator, placed, id };
}

describe('announcing alert changes', () => {
  it('announces alert.fired and then alert.resolved once routing works again, though both were written while Redis was away', { timeout: 60_000 }, async () => {
    const { db, endpointId } = await freshFixture();
    const redis = await startPrivateRedis();
    const client = createRedisClient(redis.url, 'alert-evaluator-test', logger);
    onTestFinished(() => closeRedis(client));
    await waitFor(() => client.status === 'ready', { message: 'redis connected' });
    const { evaluator, placed } = evaluatorOn(db, createRedisLog({ redis: client, retention: RETENTION, keyPrefix: uniquePrefix() }), [
      webhookFailureRateRule(db, { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 }),
    ]);
    const id = failureRateAlertOf(endpointId);

    await redis.stop();
    await waitFor(() => client.status !== 'ready', { message: 'redis seen away' });
    // The alert fires and resolves while no event can be routed: both changes are written.
    await tally(db, endpointId, 10, 10);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, id)).toMatchObject({ state: 'firing', count: 1 });
    await tally(db, endpointId, 10, 0);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, id)).toMatchObject({ state: 'resolved', count: 1 });
    expect(placed).toEqual([]);

    await redis.start();
    await waitFor(() => client.status === 'ready', { timeoutMs: 15_000, message: 'redis reconnected' });
    await evaluate(evaluator, 1);
    expect(alertTypes(placed)).toEqual([`alert.fired endpoint:${endpointId}`, `alert.resolved endpoint:${endpointId}`]);
    // Each event is the alert as its change left it.
    expect(placed.map((event) => event.payload['state'])).toEqual(['firing', 'resolved']);
    expect((await db.query('SELECT count(*)::int AS n FROM alert_changes')).rows).toEqual([{ n: 0 }]);

    // Announced once: a later evaluation has nothing left to route.
    await evaluate(evaluator, 1);
    expect(placed).toHaveLength(2);
  });

  it('announces, after the upgrade that keeps every change (migration 0022), a last change that was not announced before it', async () => {
    const database = await createTestDatabase();
    const db = createPostgresDatabase({ url: database.url, logger });
    onTestFinished(() => db.close());
    await migrateBefore(db, '0022');
    await db.query(
      `INSERT INTO alerts (id, rule, subject, app, env, severity, state, message, last_change, announced) VALUES
         ('alrt_pending', 'webhook.dead_letters', 'endpoint:ep_pending', 'app', 'env', 'warning', 'firing', '3 dead letters', 'fired', false),
         ('alrt_told', 'webhook.dead_letters', 'endpoint:ep_told', 'app', 'env', 'warning', 'firing', '4 dead letters', 'fired', true)`,
    );

    // The upgrade applies 0022 first (and whatever later migrations there are).
    expect((await migrate(db, { logger })).applied[0]).toBe('0022_alert_changes.sql');
    const { evaluator, placed } = evaluatorOn(db, memoryLog(), []);
    await evaluate(evaluator, 1);
    expect(alertTypes(placed)).toEqual(['alert.fired endpoint:ep_pending']);
  });
});
