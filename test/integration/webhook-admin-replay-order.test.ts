/**
 * The order a replay stores an entity's events in when they come from the endpoint's own
 * deliveries (the log no longer holds them), against a real Postgres: oldest event first, whatever
 * order the deliveries copied were made in — an older event's only delivery may be a replay's copy,
 * made after a later event's first delivery.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createLocalWake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { createWebhookAdmin, type WebhookAdmin } from '../../src/pipeline/webhooks/webhook-admin.ts';
import { sharedDeliveryFixture } from '../helpers/delivery-fixture.ts';

const SCOPE: Scope = { app: 'app', env: 'env', tenant: undefined };
const HOUR_MS = 3_600_000;
const silent = createLogger({ level: 'silent' });
const shared = sharedDeliveryFixture();

function openLog(): EventLog {
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: HOUR_MS }, publish: () => undefined });
  onTestFinished(() => log.close());
  return log;
}

async function adminWith(log: EventLog): Promise<WebhookAdmin> {
  const endpoints = await createEndpointCache({ db: shared.db, refreshMs: 600_000, logger: silent });
  const statistics = createDeliveryStatistics({ db: shared.db, logger: silent });
  const admin = createWebhookAdmin({ db: shared.db, log, endpoints, scheduler: createLocalWake(), statistics, allowPrivateTargets: true, maxBodyBytes: 262_144, logger: silent });
  onTestFinished(async () => {
    await admin.close();
    await statistics.close();
    endpoints.close();
  });
  return admin;
}

describe('a replay from the endpoint’s own deliveries', () => {
  it('stores an entity’s events oldest first when the older one’s only delivery is a later replay’s copy', async () => {
    const now = Date.now();
    const older = { id: 'evt_order_older', at: now - 30 * 60_000 };
    const newer = { id: 'evt_order_newer', at: now - 10 * 60_000 };
    const log = openLog();
    for (const { id, at } of [older, newer]) {
      await log.append(streamOf(SCOPE, 'orders'), { id, topic: 'orders', source: 'system', type: 'order.updated', payload: { id }, metadata: { timestamp: at, scope: SCOPE, entity: 'order-1' } });
    }
    const admin = await adminWith(log);
    // Created after the older event was routed: the newer one reached it (routing), the older did not.
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders'] });
    await shared.db.query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, topic, lane, body, trigger, event_time, state, finished_at)
       VALUES ($1, $2, 'order.updated', 'orders', '|order-1', '{}', 'initial', $3, 'delivered', now())`,
      [endpoint.id, newer.id, new Date(newer.at)],
    );
    // The admin catches the endpoint up from the log: a copy of each, the older first.
    expect(await admin.replay(SCOPE, endpoint.id, { since: new Date(now - HOUR_MS), onlyFailed: false })).toBe(2);
    await shared.db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE endpoint_id = $1`, [endpoint.id]);

    // Later the log no longer holds them (its hour is over, or a restart emptied it): the same range
    // again comes from the deliveries — the newer event's first is its initial one, the older's a replay's.
    const later = await adminWith(openLog());
    expect(await later.replay(SCOPE, endpoint.id, { since: new Date(now - HOUR_MS), onlyFailed: false })).toBe(2);
    const { rows } = await shared.db.query<{ event_id: string }>(
      `SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending' ORDER BY id`,
      [endpoint.id],
    );
    expect(rows.map((row) => row.event_id)).toEqual([older.id, newer.id]);
  });
});
