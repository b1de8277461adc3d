/**
 * What a `system.alerts` event carries — what a webhook relay receives as `data` — on a real
 * Postgres: the alert as the API shows it (`GET /api/alerts`, GraphQL's `Alert`: `id`, `status`,
 * values in lower case) with the `app` and `env` it belongs to, so a relay shared by several
 * environments tells where it comes from; `alertId` and `state`, the names earlier versions sent,
 * still come along for this version. An event of an earlier version (those names only) is still
 * read by `alertUpdates`.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule, Verdict } from '../../src/pipeline/alerts/alert-rule.ts';
import { acknowledgeAlert, alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { ALERT_TOPIC } from '../../src/pipeline/events/alert-event.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { alertUpdateOf, viewOf } from '../../src/resolvers/alerts.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'shop', env: 'prod', tenant: 'acme' };

describe('alert event data', () => {
  it('is the alert as the API answers it, with its app and env, and the earlier names beside', async () => {
    const deliveries = await createDeliveryFixture();
    onTestFinished(() => deliveries.dispose());
    const { db } = deliveries;
    const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
    onTestFinished(() => log.close());
    const placed: RealtimeEvent[] = [];
    const router = createEventRouter({ log, logger, afterPlaced: (events) => (placed.push(...events), Promise.resolve()) });
    const verdict: Verdict = { kind: 'bad', severity: 'critical', value: 0.8, message: '80 % of attempts failed' };
    const rule: AlertRule = { name: 'test.failures', description: 'a figure the test sets', read: () => Promise.resolve([{ subject: 'endpoint:ep_1', scope: SCOPE, verdict }]) };
    const evaluator = createAlertEvaluator({ db, router, rules: [rule], policy: { fireAfter: 2, resolveAfter: 3 }, windowMs: 300_000, holder: randomUUID(), leaseMs: 60_000, logger });
    const id = alertIdOf({ rule: rule.name, subject: 'endpoint:ep_1', scope: SCOPE });

    await evaluator.evaluate();
    await evaluator.evaluate();
    const fired = await getAlert(db, id);
    await acknowledgeAlert(db, id, 'ops');
    await evaluator.evaluate();
    const acknowledged = await getAlert(db, id);

    const events = placed.filter((event) => event.topic === ALERT_TOPIC);
    expect(events.map((event) => [event.type, event.metadata.scope])).toEqual([
      ['alert.fired', { app: 'shop', env: 'prod', tenant: undefined }],
      ['alert.acknowledged', { app: 'shop', env: 'prod', tenant: undefined }],
    ]);
    // The REST route's JSON of the alert at each change, plus where it belongs and its endpoint.
    const asRest = (record: typeof fired) => JSON.parse(JSON.stringify(viewOf(record!))) as Record<string, unknown>;
    for (const [event, record] of [[events[0]!, fired], [events[1]!, acknowledged]] as const) {
      const rest = asRest(record);
      expect(event.payload).toEqual({ ...rest, app: 'shop', env: 'prod', endpointId: 'ep_1', alertId: rest['id'], state: rest['status'] });
    }
    expect(events[1]!.payload).toMatchObject({ id, status: 'acknowledged', tenant: 'acme', acknowledgedBy: 'ops', severity: 'critical' });
    // The API's fields first, in its order; the earlier names last.
    expect(Object.keys(events[0]!.payload)).toEqual([
      'id', 'rule', 'subject', 'endpointId', 'app', 'env', 'tenant', 'severity', 'status', 'count', 'value', 'message',
      'firstFiredAt', 'lastFiredAt', 'acknowledgedAt', 'acknowledgedBy', 'resolvedAt', 'alertId', 'state',
    ]);

    // An event an earlier version routed (still in the log, or from a worker not upgraded yet).
    const { id: _id, status: _status, app: _app, env: _env, ...earlier } = events[1]!.payload;
    const update = alertUpdateOf({ ...events[1]!, payload: earlier });
    expect(update.alert).toEqual(viewOf(acknowledged!));
    expect(alertUpdateOf(events[1]!).alert).toEqual(viewOf(acknowledged!));
  });
});
