/**
 * The deliverer on a `410 Gone`, against a real Postgres and a real receiver: the delivery is held
 * as its lane's head for the disabled endpoint (not dead-lettered: its entity's next event is not
 * released), counted as `gone` and never as a dead letter; and one whose endpoint was enabled
 * between the disable and the attempt's record — which the enable could not move for good — is
 * made due at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, QueryOptions, Row } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import type { Metrics } from '../../src/metrics.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { claimDeliveries, getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createMemoryGate } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { resumeLanes } from '../../src/pipeline/webhooks/endpoint-resume.ts';
import { enableEndpoint, insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/pipeline/webhooks/retry-schedule.ts';
import { createWebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createWebhookHttpClient } from '../../src/pipeline/webhooks/webhook-http.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const logger = createLogger({ level: 'silent' });
let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

async function goneSetup(db: Database) {
  const receiver = await startWebhookReceiver();
  receiver.respond = () => 410;
  const endpoint = await insertEndpoint(fixture.db, { app: 'app', env: 'env', tenant: null, url: receiver.url, description: '', events: ['*'], rateLimitPerSecond: null, maxConcurrency: 10, secret: newWebhookSecret() });
  const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
  const http = createWebhookHttpClient({ allowPrivateTargets: true });
  const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
  const counted: string[] = [];
  const metrics = {
    webhookAttempts: { inc: (labels: { outcome: string }) => void counted.push(labels.outcome) },
    webhookAttemptSeconds: { observe: () => undefined },
    webhookDeadLetters: { inc: () => void counted.push('dead letter') },
  } as unknown as Pick<Metrics, 'webhookAttempts' | 'webhookAttemptSeconds' | 'webhookDeadLetters'>;
  const deliverer = createWebhookDeliverer({ db, endpoints, http, gate: createMemoryGate(), router, policy: DEFAULT_RETRY_POLICY, timeoutMs: 5_000, disableAfterMs: 86_400_000, logger, metrics });
  const close = async () => {
    endpoints.close();
    await http.close();
  };
  return { endpoint, deliverer, counted, close };
}

describe('the deliverer on a 410 Gone', () => {
  it('holds the delivery as its lane’s head while the endpoint is disabled: logged and counted as gone, no dead letter', async () => {
    const { endpoint, deliverer, counted, close } = await goneSetup(fixture.db);
    try {
      const lane = { ...fixture.delivery('gone-held'), endpointId: endpoint.id };
      const { inserted } = await storeDeliveries(fixture.db, [lane, { ...fixture.delivery('gone-held'), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, [inserted[0]!], 30_000);
      const before = Date.now();
      const outcome = await deliverer.deliver(delivery!);
      // Waiting for the enable (looked at again within the hour), its lane's next not released.
      expect(outcome).toMatchObject({ waitsForEndpoint: true });
      expect(outcome.nextInLane).toBeUndefined();
      expect(outcome.retryAt!.getTime()).toBeGreaterThan(before + 30 * 60_000);
      expect(await getDelivery(fixture.db, inserted[0]!)).toMatchObject({ state: 'pending', attempts: 1, lastStatus: 410, lease: null });
      expect(await getDelivery(fixture.db, inserted[1]!)).toMatchObject({ state: 'pending', attempts: 0 });
      const { rows } = await fixture.db.query<{ outcome: string; enabled: boolean }>(
        `SELECT a.outcome, e.enabled FROM webhook_attempts a JOIN webhook_endpoints e ON e.id = a.endpoint_id WHERE a.delivery_id = $1::bigint`,
        [inserted[0]],
      );
      expect(rows).toEqual([{ outcome: 'gone', enabled: false }]);
      expect(counted).toEqual(['gone']);
    } finally {
      await close();
    }
  });

  it('makes the held delivery due at once when the endpoint was enabled between the disable and the record', async () => {
    let raced = false;
    let endpointId = '';
    // The real database; an admin's enable (and its making the heads due) comes just before the attempt's record.
    const racing: Database = {
      ...fixture.db,
      async query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
        if (options?.prepareAs === 'tributary_webhook_record_attempts' && !raced) {
          raced = true;
          await enableEndpoint(fixture.db, endpointId);
          await resumeLanes(fixture.db, endpointId, '', 1_000);
        }
        return fixture.db.query<R>(sql, params, options);
      },
    };
    const { endpoint, deliverer, close } = await goneSetup(racing);
    endpointId = endpoint.id;
    try {
      const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('gone-raced'), endpointId: endpoint.id }]);
      const [delivery] = await claimDeliveries(fixture.db, inserted, 30_000);
      const outcome = await deliverer.deliver(delivery!);
      expect(raced).toBe(true);
      expect(outcome.waitsForEndpoint).toBeUndefined();
      const held = await getDelivery(fixture.db, inserted[0]!);
      expect(held).toMatchObject({ state: 'pending', attempts: 1 });
      // Due now, as the enable made it (not an hour out, as the record set it), and scheduled so.
      expect(held!.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
      expect(outcome.retryAt!.getTime()).toBeLessThanOrEqual(Date.now());
    } finally {
      await close();
    }
  });
});
