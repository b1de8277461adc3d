/**
 * `webhook.endpoint_disabled`, on a real Postgres, one evaluation at a time (no timer). An endpoint
 * the engine disabled — its receiver answered 410, or failed too long — resolves its failure-rate
 * and dead-letter alerts (nothing is attempted to it any more), so without this rule the page ended
 * exactly when the receiver was given up on, while its deliveries wait. It stays open until the
 * endpoint is enabled again or deleted; an admin's own disable is a decision, not an alert.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { alertIdOf, getAlert, openCounts } from '../../src/pipeline/alerts/alert-store.ts';
import { webhookEndpointDisabledRule } from '../../src/pipeline/alerts/rules/webhook-rules.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { ADMIN_DISABLE_REASON, deleteEndpoint, disableEndpoint, enableEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { evaluate, evaluatorOn } from '../helpers/alert-evaluation.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const RULE = 'webhook.endpoint_disabled';

async function fixture() {
  const created = await createDeliveryFixture();
  onTestFinished(() => created.dispose());
  return created;
}

const alertOf = (endpointId: string) => alertIdOf({ rule: RULE, subject: `endpoint:${endpointId}`, scope: SCOPE });
const alertChanges = (events: readonly RealtimeEvent[]) => events.filter((event) => event.topic === 'system.alerts').map((event) => event.type);

describe('an endpoint the engine disabled', () => {
  it('is a critical alert while it stays disabled, resolved once enabled again', async () => {
    const { db, endpointId } = await fixture();
    const { evaluator, placed } = evaluatorOn(db, [webhookEndpointDisabledRule(db)]);
    await evaluate(evaluator, 2);
    expect(await getAlert(db, alertOf(endpointId))).toBeUndefined();

    await disableEndpoint(db, endpointId, 'the endpoint answered 410 Gone');
    await evaluate(evaluator, 2);
    expect(await getAlert(db, alertOf(endpointId))).toMatchObject({
      state: 'firing',
      severity: 'critical',
      message: 'disabled (the endpoint answered 410 Gone); its deliveries wait until it is enabled (setWebhookEndpointEnabled)',
    });
    // An admin disabling it as well changes nothing: it keeps the engine's reason, and stays open.
    expect(await disableEndpoint(db, endpointId, ADMIN_DISABLE_REASON)).toBeUndefined();
    await evaluate(evaluator, 5);
    expect(await getAlert(db, alertOf(endpointId))).toMatchObject({ state: 'firing' });

    await enableEndpoint(db, endpointId);
    await evaluate(evaluator, 3);
    expect(await getAlert(db, alertOf(endpointId))).toMatchObject({ state: 'resolved' });
    expect(await openCounts(db)).toEqual([]);
    expect(alertChanges(placed)).toEqual(['alert.fired', 'alert.resolved']);
  });

  it('resolves when the endpoint is deleted', async () => {
    const { db, endpointId } = await fixture();
    const { evaluator } = evaluatorOn(db, [webhookEndpointDisabledRule(db)]);
    await disableEndpoint(db, endpointId, 'no successful delivery for 432000 s');
    await evaluate(evaluator, 2);
    expect(await getAlert(db, alertOf(endpointId))).toMatchObject({ state: 'firing' });

    await deleteEndpoint(db, endpointId);
    await evaluate(evaluator, 1);
    expect(await getAlert(db, alertOf(endpointId))).toMatchObject({ state: 'resolved', message: `endpoint:${endpointId} no longer exists` });
  });
});

describe('an endpoint an admin disabled', () => {
  it('fires nothing: the admin decided', async () => {
    const { db, endpointId } = await fixture();
    const { evaluator, placed } = evaluatorOn(db, [webhookEndpointDisabledRule(db)]);
    await disableEndpoint(db, endpointId, ADMIN_DISABLE_REASON);
    await evaluate(evaluator, 4);
    expect(await getAlert(db, alertOf(endpointId))).toBeUndefined();
    expect(alertChanges(placed)).toEqual([]);
  });
});
