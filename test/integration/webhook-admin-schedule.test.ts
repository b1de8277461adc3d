/**
 * Deliveries an admin asks for (redelivery, replay, test event) when BullMQ's Redis is briefly
 * unreachable, against a real Postgres and a real Redis behind a proxy the test cuts: once they are
 * stored the call answers with them — the workers' reconciler queues the heads without a job — so
 * no admin asks again and has every delivery stored twice.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createWebhookAdmin } from '../../src/pipeline/webhooks/webhook-admin.ts';
import { sharedDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { waitFor } from '../helpers/wait-for.ts';

const SCOPE: Scope = { app: 'app', env: 'env', tenant: undefined };
const shared = sharedDeliveryFixture();

describe('deliveries an admin asks for while the queue’s Redis is away', () => {
  it('answers a test event, a redelivery and a replay with what it stored, each stored once, and warns', { timeout: 60_000 }, async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) } });
    const proxy = await startTcpProxy(Number(new URL(testRedisUrl()).port));
    const scheduler = createBullmqScheduler({ redisUrl: `redis://127.0.0.1:${proxy.port}`, prefix: uniquePrefix(), logger });
    onTestFinished(async () => {
      proxy.refuse(false);
      await scheduler.close();
    });
    // Connected first, as a running server is; then the connection goes (the queue reports it), and
    // adding a job fails at once.
    await scheduler.waiting();
    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => lines.some((line) => line.msg.startsWith('webhook queue error')), { message: 'the queue finds Redis away' });

    const now = Date.now();
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: () => undefined });
    onTestFinished(() => log.close());
    await log.append(streamOf(SCOPE, 'orders'), { id: 'evt_away_1', topic: 'orders', source: 'system', type: 'order.updated', payload: {}, metadata: { timestamp: now - 60_000, scope: SCOPE, entity: 'order-1' } });
    const endpoints = await createEndpointCache({ db: shared.db, refreshMs: 600_000, logger });
    const statistics = createDeliveryStatistics({ db: shared.db, logger });
    const admin = createWebhookAdmin({ db: shared.db, log, endpoints, scheduler, statistics, allowPrivateTargets: true, maxBodyBytes: 262_144, logger });
    onTestFinished(async () => {
      await admin.close();
      await statistics.close();
      endpoints.close();
    });
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders'] });

    expect(await admin.replay(SCOPE, endpoint.id, { since: new Date(now - 3_600_000), onlyFailed: false })).toBe(1);
    const test = await admin.sendTest(SCOPE, endpoint.id);
    expect(test).toMatchObject({ endpointId: endpoint.id, trigger: 'test', state: 'pending' });
    // Delivered meanwhile: its redelivery is its lane's head, to be queued.
    await shared.db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE id = $1`, [test.id]);
    const redelivered = await admin.redeliver(SCOPE, test.id);
    expect(redelivered).toMatchObject({ eventId: test.eventId, trigger: 'manual', state: 'pending' });

    const { rows } = await shared.db.query<{ trigger: string; event_id: string; state: string }>(
      'SELECT trigger, event_id, state FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id',
      [endpoint.id],
    );
    expect(rows).toEqual([
      { trigger: 'replay', event_id: 'evt_away_1', state: 'pending' },
      { trigger: 'test', event_id: test.eventId, state: 'delivered' },
      { trigger: 'manual', event_id: test.eventId, state: 'pending' },
    ]);
    // Each call's lane head could not be queued: told once each.
    expect(lines.filter((line) => line.msg.includes('stored but not queued'))).toHaveLength(3);
  });
});
