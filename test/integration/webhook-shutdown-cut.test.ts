/**
 * An attempt cut by this process's shutdown (its receiver still working on it when the workers'
 * wait ran out) is not the receiver's failure: the failure-rate alert's tallies, the endpoint's
 * failure streak (which disables it) and the `failed` metric must not count it, or a receiver
 * slower than the shutdown's wait gets a false alert at every deploy. It is in the attempt log as
 * `cut` (not `failed`), due again at once, and not one of the delivery's attempts: its retries
 * stay where the receiver's own attempts put them on the curve and in the window (migration 0028).
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import type { LoggedOutcome } from '../../src/pipeline/webhooks/attempt-outcome.ts';
import { createAttemptTallies } from '../../src/pipeline/webhooks/attempt-tallies.ts';
import { listAttempts } from '../../src/pipeline/webhooks/delivery-log.ts';
import { claimDeliveries, getDelivery, storeDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache, type EndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createMemoryGate } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../../src/pipeline/webhooks/retry-schedule.ts';
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

/** A slow receiver's endpoint (in its own cache), for one test. */
async function slowEndpoint(receiver: { readonly url: string }): Promise<{ readonly id: string; readonly endpoints: EndpointCache }> {
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
  return { id: endpoint.id, endpoints };
}

/**
 * One worker process's deliverer: its own HTTP client, which `http.abort()` (what the workers'
 * close does once the shutdown's wait has run out) cuts for good, as a process's shutdown does.
 */
function startWorker(endpoints: EndpointCache, policy: RetryPolicy = DEFAULT_RETRY_POLICY) {
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
    policy,
    timeoutMs: 30_000,
    // A failure would start the endpoint's streak toward being disabled.
    disableAfterMs: 86_400_000,
    logger,
    metrics,
    tallies,
  });
  return { deliverer, http, tallies, metrics };
}

type LoggedAttempt = { attempt: number; trigger: string; outcome: string; status: number | null; error: string | null };

const loggedAttempts = async (deliveryId: string) =>
  (await fixture.db.query<LoggedAttempt>('SELECT attempt, trigger, outcome, status, error FROM webhook_attempts WHERE delivery_id = $1::bigint ORDER BY id', [deliveryId])).rows;

it('counts an attempt cut by shutdown as cut: no failure tally, no failure streak, no failed metric, logged as cut and due at once', async () => {
  const receiver = await startWebhookReceiver();
  // The receiver takes its time (never an error): the attempt is still in flight when it is cut.
  receiver.respond = () => 'hang';
  const endpoint = await slowEndpoint(receiver);
  const { deliverer, http, tallies, metrics } = startWorker(endpoint.endpoints);

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
  // Logged as the first attempt, cut — not as a failure of the receiver's.
  expect(await loggedAttempts(inserted[0]!)).toEqual([{ attempt: 1, trigger: 'initial', outcome: 'cut', status: null, error: expect.stringMatching(/^cut by shutdown/) as unknown }]);
  // The admin log's filter by outcome: `failed` does not list it, `cut` does.
  const byOutcome = (outcome: LoggedOutcome) => listAttempts(fixture.db, { endpointIds: [endpoint.id], outcome, limit: 10 });
  expect(await byOutcome('failed')).toEqual([]);
  expect((await byOutcome('cut')).map((attempt) => attempt.outcome)).toEqual(['cut']);
  // Not one of the delivery's attempts: none counted, its retry window not begun.
  const after = await getDelivery(fixture.db, inserted[0]!);
  expect(after).toMatchObject({ state: 'pending', attempts: 0, firstAttemptAt: null, lastStatus: null, lastError: null, lease: null });
  expect(after!.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
});

it('logs the attempt after a cut with the cut one\'s number, and retries it as the receiver\'s own attempts say', async () => {
  const receiver = await startWebhookReceiver();
  // A failure, then an attempt still in flight at the shutdown, then a failure again.
  receiver.respond = (_request, index) => (index === 1 ? 'hang' : 500);
  const endpoint = await slowEndpoint(receiver);
  // The second retry falls in the tail, past the window: counted, the cut would make the third
  // attempt's failure the dead letter; the receiver failed only twice, which the curve retries.
  const policy: RetryPolicy = { windowMs: 3_600_000, fastAttempts: 2, maxFastDelayMs: 60_000, tailIntervalMs: 36_000_000 };
  const first = startWorker(endpoint.endpoints, policy);
  const { inserted } = await storeDeliveries(fixture.db, [{ ...fixture.delivery('cut-then-retry'), endpointId: endpoint.id }]);
  const id = inserted[0]!;
  // Stands in for the wait until the delivery's retry is due.
  const dueNow = () => fixture.db.query('UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1::bigint', [id]);
  const claim = async () => (await claimDeliveries(fixture.db, [id], 60_000))[0]!;

  expect(await first.deliverer.deliver(await claim())).toMatchObject({ retryAt: expect.any(Date) as unknown });
  const failed = await getDelivery(fixture.db, id);
  expect(failed).toMatchObject({ attempts: 1, lastStatus: 500 });
  await dueNow();
  const delivering = first.deliverer.deliver(await claim());
  await receiver.waitForCount(2);
  await first.http.abort();
  await delivering;

  // The cut left the delivery as the receiver's one failure had: its count, window and last answer.
  expect(await getDelivery(fixture.db, id)).toMatchObject({ state: 'pending', attempts: 1, firstAttemptAt: failed!.firstAttemptAt, lastStatus: 500, lastError: null });
  // The next process attempts it at once (the cut made it due).
  const second = startWorker(endpoint.endpoints, policy);
  const outcome = await second.deliverer.deliver(await claim());

  expect(outcome.retryAt).toBeInstanceOf(Date);
  expect(await getDelivery(fixture.db, id)).toMatchObject({ state: 'pending', attempts: 2, firstAttemptAt: failed!.firstAttemptAt, lastStatus: 500 });
  // The cut carries the number of the attempt it would have been; the next attempt, that number again.
  expect((await loggedAttempts(id)).map(({ attempt, trigger, outcome }) => ({ attempt, trigger, outcome }))).toEqual([
    { attempt: 1, trigger: 'initial', outcome: 'failed' },
    { attempt: 2, trigger: 'retry', outcome: 'cut' },
    { attempt: 2, trigger: 'retry', outcome: 'failed' },
  ]);
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
  expect(attempts).toEqual([{ outcome: 'cut', error: expect.stringMatching(/^cut by shutdown/) as unknown }]);
  const { rows: deliveries } = await client.query<{ state: string; attempts: number; first_attempt_at: Date | null; due: boolean }>(
    'SELECT state, attempts, first_attempt_at, next_attempt_at <= clock_timestamp() AS due FROM webhook_deliveries',
  );
  expect(deliveries).toEqual([{ state: 'pending', attempts: 0, first_attempt_at: null, due: true }]);
});
