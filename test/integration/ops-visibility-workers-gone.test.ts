/**
 * When every workers process is down, the operator is told, by a process that is still up: a
 * server (role `server`, real Redis and Postgres) lists a workers instance that stopped reporting
 * without taking its report away (kill -9, a frozen or cut-off host) as gone, with its last report
 * time, warns that nothing runs the workers' jobs — over GraphQL and REST — and its `/metrics`
 * counts the workers at 0. The embedded default (one `all` process) counts itself and warns of nothing.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { InstanceTotals } from '../../src/pipeline/analytics/instance-figures.ts';
import { startDashboardReporter } from '../../src/pipeline/dashboard/dashboard-reporter.ts';
import { createRedisReportStore } from '../../src/pipeline/dashboard/report-store.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const TICK_MS = 1_000;
const ENV = { JWT_SECRET: TEST_SECRET, OPERATOR_SCOPE: 'ops/prod', DASHBOARD_TICK_SECONDS: String(TICK_MS / 1000) };
const LIVE = { connections: 0, subscriptions: 0, slowConsumerCloses: 0, cdcReaders: [], outboxes: [], webhookBacklogs: [] };
const WARNING = /^no workers process has reported since \d{4}-\d\d-\d\dT[\d:.]+Z: outbox routing, webhook delivery and alerts are stopped$/;

const operator = () => signHs256({ sub: 'ops-admin', app: 'ops', env: 'prod', roles: ['admin'], permissions: [], tenant: undefined });

interface View {
  instances: { instance: string; role: string; reportedAt: string; gone: boolean }[];
  warnings: string[];
}

async function dashboard(server: TestServer): Promise<View> {
  const body = await gql(server, await operator(), '{ dashboard { instances { instance role reportedAt gone } warnings } }');
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data?.['dashboard'] as View;
}

/** Waits for `probe` to find something. */
async function found<T>(probe: () => Promise<T | undefined>, options: Parameters<typeof waitFor>[1]): Promise<T> {
  return (await waitFor(probe, options)) as T;
}

/** `tributary_cluster_instances` of a `/metrics` text, by role. */
async function instancesByRole(server: TestServer): Promise<Record<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const [, role, value] of text.matchAll(/^tributary_cluster_instances\{role="([a-z]+)"\} (\S+)$/gm)) counts[role!] = Number(value);
  return counts;
}

describe('every workers process gone', () => {
  it('shows a workers instance that stopped reporting as gone, warns that its jobs are stopped, and counts 0 workers in the server’s /metrics', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase({ migrated: true });
    const prefix = uniquePrefix();
    const server = await startTestServer({ ...ENV, TRIBUTARY_ROLE: 'server', DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix });
    const redis = new Redis(testRedisUrl());
    onTestFinished(() => void redis.disconnect());
    const store = createRedisReportStore({ redis, keyPrefix: prefix, ttlMs: 600_000, now: Date.now, logger });
    const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
    onTestFinished(() => log.close());
    // A workers process's reporter. Killed, a process never takes its report away: its close() here does not either.
    const workers = startDashboardReporter({
      role: 'workers',
      figures: new InstanceTotals(true, Date.now),
      live: () => Promise.resolve(LIVE),
      store: { ...store, remove: () => Promise.resolve() },
      router: createEventRouter({ log, logger }),
      operatorScope: { app: 'ops', env: 'prod' },
      tickMs: TICK_MS,
      resyncWindowMs: 300_000,
      now: Date.now,
      logger,
    });
    onTestFinished(() => workers.close());
    await workers.report();

    const before: View = await found(
      async () => {
        const view = await dashboard(server);
        return view.instances.some((instance) => instance.role === 'server') ? view : undefined;
      },
      { timeoutMs: 10_000, message: 'the server reported itself' },
    );
    expect(before.instances.find((instance) => instance.instance === workers.instance)).toMatchObject({ role: 'workers', gone: false });
    expect(before.warnings).toEqual([]);
    expect(await instancesByRole(server)).toMatchObject({ workers: 1, server: 1, all: 0 });

    // kill -9: no more reports, and the last one stays behind.
    await workers.close();
    const after: View = await found(
      async () => {
        const view = await dashboard(server);
        return view.instances.find((instance) => instance.instance === workers.instance)?.gone ? view : undefined;
      },
      { timeoutMs: 20_000, message: 'the workers instance is shown as gone' },
    );
    const gone = after.instances.find((instance) => instance.instance === workers.instance);
    expect(gone?.role).toBe('workers');
    expect(after.warnings).toHaveLength(1);
    expect(after.warnings[0]).toMatch(WARNING);
    // Since its last report.
    expect(after.warnings[0]).toContain(gone?.reportedAt);
    expect(await instancesByRole(server)).toMatchObject({ workers: 0, all: 0, server: 1 });

    // REST says the same.
    const rest = (await (await fetch(`${server.url}/api/metrics/dashboard`, { headers: { authorization: `Bearer ${await operator()}` } })).json()) as {
      instances: { instance: string; gone: boolean }[];
      warnings: string[];
    };
    expect(rest.instances.find((instance) => instance.instance === workers.instance)).toMatchObject({ gone: true });
    expect(rest.warnings[0]).toMatch(WARNING);
  });

  it('counts the one process of the embedded default, role all, and warns of nothing', { timeout: 60_000 }, async () => {
    const server = await startTestServer(ENV, { embedded: true });
    const counts = await waitFor(
      async () => {
        const seen = await instancesByRole(server);
        return seen['all'] === 1 ? seen : undefined;
      },
      { timeoutMs: 10_000, message: 'the embedded process counted itself' },
    );
    expect(counts).toEqual({ all: 1, server: 0, workers: 0 });
    expect((await dashboard(server)).warnings).toEqual([]);
  });
});
