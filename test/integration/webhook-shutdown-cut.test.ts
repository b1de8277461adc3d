/**
 * An attempt cut by this process's shutdown (its receiver still working on it when the workers'
 * wait ran out) is not the receiver's failure: the failure-rate alert's tallies, the endpoint's
 * failure streak (which disables it) and the `failed` metric must not count it, or a receiver
 * slower than the shutdown's wait gets a false alert at every deploy. It is still in the attempt
 * log, as cut, and due again at once.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { createAttemptTallies } from '../../src/pipeline/webhooks/attempt-tallies.ts';
import { claimDeliveries, getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createMemoryGate } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/pipeline/webhooks/retry-schedule.ts';
import { createWebhookDeliverer } from '../../src/pipeline/webhooks/webhook-deliverer.ts';
import { createWebhookHttpClient } from '../../src/pipeline/webhooks/webhook-http.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { captureLogs, postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

const logger = createLogger({ level: 'silent' });
let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

it('counts an attempt cut by shutdown as cut: no failure tally, no failure streak, no failed metric, logged as cut and due at once', async () => {
  const receiver = await startWebhookReceiver();
  // The receiver takes its time (never an error): the attempt is still in flight when it is cut.
  receiver.respond = () => 'hang';
  const endpoint = await insertEndpoint(fixture.db, {
    app: 'app',
    env: 'env',
    tenant: null,
    url: receiver.url,
    description: 'slow receiver',
    events: ['*'],
    rateLimitPerSecond: null,
    maxConcurrency: 10,
    secret: newWebhookSecret(),
  });
  const endpoints = await createEndpointCache({ db: fixture.db, refreshMs: 60_000, logger });
  onTestFinished(() => endpoints.close());
  const http = createWebhookHttpClient({ allowPrivateTargets: true });
  onTestFinished(() => http.close());
  const tallies = createAttemptTallies({ db: fixture.db, logger, flushMs: 60_000 });
  onTestFinished(() => tallies.close());
  const metrics = createMetrics({ processMetrics: false });
  const router = { route: () => Promise.resolve([]) } as unknown as EventRouter;
  const deliverer = createWebhookDeliverer({
    db: fixture.db,
    endpoints,
    http,
    gate: createMemoryGate(),
    router,
    policy: DEFAULT_RETRY_POLICY,
    timeoutMs: 30_000,
    // A failure would start the endpoint's streak toward being disabled.
    disableAfterMs: 86_400_000,
    logger,
    metrics,
    tallies,
  });

  const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('cut'), endpointId: endpoint.id }]);
  const [delivery] = await claimDeliveries(fixture.db, inserted, 60_000);
  const delivering = deliverer.deliver(delivery!);
  await receiver.waitForCount(1);
  // What the workers' close does once the shutdown's wait for attempts in flight has run out.
  await http.abort();
  const outcome = await delivering;
  await tallies.flush();

  expect(outcome.retryAt).toBeInstanceOf(Date);
  const { rows: tallied } = await fixture.db.query<{ failures: number }>('SELECT coalesce(sum(failures), 0)::int AS failures FROM webhook_attempt_tallies WHERE endpoint_id = $1', [endpoint.id]);
  expect(tallied).toEqual([{ failures: 0 }]);
  const { rows: rowsOfEndpoint } = await fixture.db.query<{ failing_since: Date | null }>('SELECT failing_since FROM webhook_endpoints WHERE id = $1', [endpoint.id]);
  expect(rowsOfEndpoint).toEqual([{ failing_since: null }]);
  const counted = (await metrics.webhookAttempts.get()).values.map(({ labels, value }) => ({ outcome: labels.outcome, value }));
  expect(counted).toEqual([{ outcome: 'cut', value: 1 }]);
  const { rows: logged } = await fixture.db.query<{ outcome: string; status: number | null; error: string | null }>(
    'SELECT outcome, status, error FROM webhook_attempts WHERE delivery_id = $1::bigint',
    [inserted[0]],
  );
  expect(logged).toEqual([{ outcome: 'failed', status: null, error: expect.stringMatching(/^cut by shutdown/) as unknown }]);
  const after = await getDelivery(fixture.db, inserted[0]!);
  expect(after).toMatchObject({ state: 'pending', attempts: 1, lease: null });
  expect(after!.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
});

it('leaves no failure in the tallies nor a failure streak on the endpoint when the workers stop with an attempt in flight', async () => {
  const receiver = await startWebhookReceiver();
  receiver.respond = () => 'hang';
  const db = await createTestDatabase();
  const logs = captureLogs();
  const server = await startTestServer(
    { DATABASE_URL: db.url, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', SHUTDOWN_TIMEOUT_MS: '2000', LOG_LEVEL: 'info' },
    { autoDispose: false, logDestination: logs },
  );
  onTestFinished(() => server.dispose());

  const created = await postGraphQL(server.graphqlUrl, {
    query: 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }',
    variables: { input: { url: receiver.url, events: ['*'] } },
  });
  expect(created.body.errors).toBeUndefined();
  const published = await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", type: "order.created", payload: { n: 1 }) { id } }' });
  expect(published.body.errors).toBeUndefined();
  await receiver.waitForCount(1);

  await server.dispose();

  expect(logs.lines.map((line) => line.msg)).toContain('webhook attempts still in flight at shutdown: cut, to be retried');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  onTestFinished(() => client.end());
  const { rows: tallied } = await client.query<{ failures: number }>('SELECT coalesce(sum(failures), 0)::int AS failures FROM webhook_attempt_tallies');
  expect(tallied).toEqual([{ failures: 0 }]);
  const { rows: endpoints } = await client.query<{ enabled: boolean; failing_since: Date | null }>('SELECT enabled, failing_since FROM webhook_endpoints');
  expect(endpoints).toEqual([{ enabled: true, failing_since: null }]);
  const { rows: attempts } = await client.query<{ outcome: string; error: string | null }>('SELECT outcome, error FROM webhook_attempts');
  expect(attempts).toEqual([{ outcome: 'failed', error: expect.stringMatching(/^cut by shutdown/) as unknown }]);
  const { rows: deliveries } = await client.query<{ state: string; attempts: number; due: boolean }>(
    'SELECT state, attempts, next_attempt_at <= clock_timestamp() AS due FROM webhook_deliveries',
  );
  expect(deliveries).toEqual([{ state: 'pending', attempts: 1, due: true }]);
});
