/**
 * Redis's `maxmemory-policy`, read from `INFO memory` when the command connection is ready (and
 * again on each reconnect): a policy that may evict dirty document entries (`allkeys-*`) is logged
 * at error level, measured as `tributary_redis_eviction_policy_ok` 0 and, in `async` durability
 * only, fails the `redis-eviction-policy` readiness check. With `allkeys-random` and `async`
 * durability the review lost 20 of 25 acknowledged merges without a sign.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { watchEvictionPolicy } from '../../src/pipeline/sync/redis-policy.ts';
import { createRedisClient } from '../../src/redis-clients.ts';
import { startPrivateRedis, uniquePrefix } from '../helpers/services.ts';
import { captureLogs, startTestServer, type LogLine } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const ERROR = 50;
const WARN = 40;
const INFO = 30;

async function policyRedis(policy: string): Promise<{ url: string; admin: Redis }> {
  const redis = await startPrivateRedis();
  const admin = new Redis(redis.url);
  onTestFinished(async () => void (await admin.quit()));
  await admin.config('SET', 'maxmemory-policy', policy);
  return { url: redis.url, admin };
}

/** `tributary_redis_eviction_policy_ok` as the registry has it: policy → value. */
async function gauge(metrics: Metrics): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric('tributary_redis_eviction_policy_ok');
  const { values } = await metric!.get();
  return Object.fromEntries(values.map((value) => [String(value.labels['policy']), value.value]));
}

function linesAbout(lines: readonly LogLine[], policy: string, level: number): LogLine[] {
  return lines.filter((line) => line.level === level && line['policy'] === policy);
}

function watch(url: string, durability: 'async' | 'sync') {
  const logs = captureLogs();
  const logger = createLogger({ level: 'info', destination: logs });
  const client = createRedisClient(url, 'policy-test', logger);
  onTestFinished(() => client.disconnect());
  const metrics = createMetrics({ processMetrics: false });
  const watcher = watchEvictionPolicy({ redis: client, durability, metrics, logger });
  onTestFinished(() => watcher.dispose());
  return { client, logs, metrics, watcher };
}

describe('the Redis eviction policy check', () => {
  it('fails readiness in async durability while Redis may evict any key, and passes again once a reconnect reads noeviction', async () => {
    const { url, admin } = await policyRedis('allkeys-random');
    const { client, logs, metrics, watcher } = watch(url, 'async');

    // Read when the connection becomes ready, without being asked.
    await waitFor(() => linesAbout(logs.lines, 'allkeys-random', ERROR).length === 1, { message: 'the error line naming allkeys-random' });
    expect(linesAbout(logs.lines, 'allkeys-random', ERROR)[0]!.msg).toContain('acknowledged document changes the database does not have yet would be lost');
    expect(await gauge(metrics)).toEqual({ 'allkeys-random': 0 });
    await expect(watcher.check()).rejects.toMatchObject({ code: 'MISCONFIGURED' });

    // Read again on each reconnect: the operator fixed the policy.
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    client.disconnect(true);
    await waitFor(() => linesAbout(logs.lines, 'noeviction', INFO).length === 1, { message: 'the policy read again after the reconnect' });
    expect(await gauge(metrics)).toEqual({ noeviction: 1 });
    await expect(watcher.check()).resolves.toBeUndefined();
    // Logged once per change of policy, not per read.
    expect(await watcher.refresh()).toBe('noeviction');
    expect(linesAbout(logs.lines, 'allkeys-random', ERROR)).toHaveLength(1);
    expect(linesAbout(logs.lines, 'noeviction', INFO)).toHaveLength(1);
  });

  it('logs and measures in sync durability without failing readiness, and only warns about volatile policies', async () => {
    const { url, admin } = await policyRedis('allkeys-lru');
    const { logs, metrics, watcher } = watch(url, 'sync');

    await waitFor(() => linesAbout(logs.lines, 'allkeys-lru', ERROR).length === 1, { message: 'the error line naming allkeys-lru' });
    expect(linesAbout(logs.lines, 'allkeys-lru', ERROR)[0]!.msg).toContain('document changes still waiting for the database would be dropped');
    expect(await gauge(metrics)).toEqual({ 'allkeys-lru': 0 });
    await expect(watcher.check()).resolves.toBeUndefined();

    // Dirty entries have no TTL: a volatile policy never evicts them.
    await admin.config('SET', 'maxmemory-policy', 'volatile-lru');
    expect(await watcher.refresh()).toBe('volatile-lru');
    expect(linesAbout(logs.lines, 'volatile-lru', WARN)).toHaveLength(1);
    expect(await gauge(metrics)).toEqual({ 'volatile-lru': 1 });
    await expect(watcher.check()).resolves.toBeUndefined();
  });

  it('is reported by a server started with Redis in async durability', async () => {
    const { url } = await policyRedis('allkeys-random');
    const logs = captureLogs();
    const server = await startTestServer(
      { REDIS_URL: url, REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'async', LOG_LEVEL: 'info' },
      { logDestination: logs },
    );
    await waitFor(() => linesAbout(logs.lines, 'allkeys-random', ERROR).length === 1, { message: 'the error line at start' });
    const scrape = await (await fetch(`${server.url}/metrics`)).text();
    expect(scrape).toContain('tributary_redis_eviction_policy_ok{policy="allkeys-random"} 0');
    // In async durability the instance is not ready: acknowledged changes could vanish.
    const ready = await fetch(`${server.url}/ready`);
    expect({ status: ready.status, body: (await ready.json()) as unknown }).toEqual({
      status: 503,
      body: { ready: false, checks: { database: 'ok', redis: 'ok', 'redis-eviction-policy': 'failing' } },
    });
  });
});
