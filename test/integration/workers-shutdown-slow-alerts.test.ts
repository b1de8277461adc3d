/**
 * docs/operations.md § Shutdown: a webhook attempt still waiting for its receiver when the workers
 * stop is cut half the shutdown's time after, recorded as failed and due again at once. The workers
 * stop side by side: an alert evaluation that is slow at that moment (its lease row locked, as a
 * contended platform database would hold it) must not hold the webhook cut-off back.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { expect, it, onTestFinished } from 'vitest';
import { createTestDatabase } from '../helpers/services.ts';
import { captureLogs, postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

/** A receiver that takes the request and never answers. */
async function hangingReceiver(): Promise<{ url: string; received: Promise<void> }> {
  const received = deferred();
  const receiver = createServer((request) => {
    request.resume();
    received.resolve();
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  onTestFinished(async () => {
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, received: received.promise };
}

it('cuts and records a webhook attempt in flight at shutdown while an alert evaluation waits on a lock', async () => {
  const receiver = await hangingReceiver();
  const db = await createTestDatabase();
  const logs = captureLogs();
  const server = await startTestServer(
    { DATABASE_URL: db.url, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', SHUTDOWN_TIMEOUT_MS: '4000', ALERTS_EVALUATE_SECONDS: '1', LOG_LEVEL: 'debug' },
    { autoDispose: false, logDestination: logs },
  );
  onTestFinished(() => server.dispose());

  // Holds the evaluator's lease row: the next evaluation waits on it.
  const locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
  onTestFinished(() => locker.end().catch(() => undefined));
  await waitFor(async () => (await locker.query('SELECT 1 FROM alert_evaluator WHERE id = 1')).rowCount === 1, { timeoutMs: 10_000 });
  await locker.query('BEGIN');
  onTestFinished(() => locker.query('ROLLBACK').then(() => undefined, () => undefined));
  await locker.query('SELECT * FROM alert_evaluator WHERE id = 1 FOR UPDATE');
  const waitingOnLock = async () => {
    const { rows } = await locker.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [db.name]);
    return rows[0]?.n ?? 0;
  };
  await waitFor(async () => (await waitingOnLock()) > 0, { timeoutMs: 10_000, message: 'an alert evaluation waits for the lease row' });

  const created = await postGraphQL(server.graphqlUrl, {
    query: 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }',
    variables: { input: { url: receiver.url, events: ['*'] } },
  });
  expect(created.body.errors).toBeUndefined();
  const published = await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", type: "order.created", payload: { n: 1 }) { id } }' });
  expect(published.body.errors).toBeUndefined();
  await receiver.received;

  await server.dispose();

  expect(logs.lines.map((line) => line.msg)).toContain('webhook attempts still in flight at shutdown: cut, to be retried');
  // Recorded as cut (not one of the delivery's attempts) and due again at once, its lease given back:
  // the next process takes it up without waiting (clock_timestamp: the locker's transaction still
  // runs, its now() is when it began).
  const { rows: attempts } = await locker.query<{ outcome: string }>('SELECT outcome FROM webhook_attempts');
  expect(attempts).toEqual([{ outcome: 'cut' }]);
  const { rows: deliveries } = await locker.query<{ state: string; attempts: number; leased: boolean; due: boolean }>(
    'SELECT state, attempts, coalesce(leased_until > clock_timestamp(), false) AS leased, next_attempt_at <= clock_timestamp() AS due FROM webhook_deliveries',
  );
  expect(deliveries).toEqual([{ state: 'pending', attempts: 0, leased: false, due: true }]);
});
