/**
 * An attempt refused for its target's address is warned about in the log of the process that
 * made it — the delivering process, which with role `workers` is not the one whose creation check
 * an operator saw — naming the setting that allows it, once per endpoint per interval (a backlog's
 * retries must not flood the log). A real Postgres, a real receiver on 127.0.0.1, the real HTTP
 * client with private targets refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { claimDeliveries, getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createMemoryGate } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/pipeline/webhooks/retry-schedule.ts';
import { createWebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createWebhookHttpClient } from '../../src/pipeline/webhooks/webhook-http.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

const endpointAt = (url: string) =>
  insertEndpoint(fixture.db, { app: 'app', env: 'env', tenant: null, url, description: '', events: ['*'], rateLimitPerSecond: null, maxConcurrency: 10, secret: newWebhookSecret() });

describe('a webhook attempt refused for its address', () => {
  it('is warned about once per endpoint per 5 minutes, naming WEBHOOK_ALLOW_PRIVATE_TARGETS, with the refusals not logged since', async () => {
    const receiver = await startWebhookReceiver();
    const [first, second] = [await endpointAt(receiver.url), await endpointAt(receiver.url)];
    const quiet = createLogger({ level: 'silent' });
    const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger: quiet });
    const http = createWebhookHttpClient({ allowPrivateTargets: false });
    const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
    const sink = captureLogs();
    let now = 1_000_000;
    const deliverer = createWebhookDeliverer({
      db: fixture.db,
      endpoints,
      http,
      gate: createMemoryGate(),
      router,
      policy: DEFAULT_RETRY_POLICY,
      timeoutMs: 5_000,
      disableAfterMs: 86_400_000,
      logger: createLogger({ level: 'info', destination: sink }),
      now: () => now,
    });
    let lanes = 0;
    const attempt = async (endpointId: string) => {
      lanes += 1;
      const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery(`refused-${lanes}`), endpointId }]);
      const [delivery] = await claimDeliveries(fixture.db, inserted, 30_000);
      await deliverer.deliver(delivery!);
      return getDelivery(fixture.db, inserted[0]!);
    };
    const warnings = () => sink.lines.filter((line) => line.level === 40 && line.msg.includes('WEBHOOK_ALLOW_PRIVATE_TARGETS'));
    try {
      // The attempt itself says what refused it, and which setting allows it.
      expect(await attempt(first.id)).toMatchObject({
        state: 'pending',
        lastError: 'refused target: 127.0.0.1 is a loopback address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it)',
      });
      await attempt(first.id);
      await attempt(first.id);
      expect(warnings()).toEqual([
        expect.objectContaining({ endpoint: first.id, refusedUnlogged: 0, error: expect.stringMatching(/^refused target: 127\.0\.0\.1 is a loopback address/) as unknown }),
      ]);
      expect(warnings()[0]?.msg).toContain('every process that delivers (role all or workers)');

      // Another endpoint is warned about on its own.
      await attempt(second.id);
      expect(warnings().map((line) => line['endpoint'])).toEqual([first.id, second.id]);

      // A moment short of 5 minutes: still not again; at 5 minutes, again, counting the three held back.
      now += 299_999;
      await attempt(first.id);
      expect(warnings()).toHaveLength(2);
      now += 1;
      await attempt(first.id);
      expect(warnings()).toHaveLength(3);
      expect(warnings()[2]).toMatchObject({ endpoint: first.id, refusedUnlogged: 3 });
      expect(receiver.received).toEqual([]);
    } finally {
      endpoints.close();
      await http.close();
    }
  });
});
