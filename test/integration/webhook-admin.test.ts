/**
 * The webhook admin's steps after a change it committed, against a real Postgres: a reload of this
 * instance's endpoints that fails fails no answer — the change is made, and a new secret is shown
 * once — nor keeps an enable from making what waited for the endpoint due; and an enable makes a
 * page of a large backlog due (and schedules its heads) before it answers, the rest in the
 * background, each head once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { createLocalWake, type DeliveryScheduler } from '../../src/pipeline/webhooks/delivery-scheduler.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';
import type { LaneHead } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointCache, type EndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import { RESUME_PAGE_LANES } from '../../src/pipeline/webhooks/endpoint-resume.ts';
import { createWebhookAdmin, type WebhookAdmin } from '../../src/pipeline/webhooks/webhook-admin.ts';
import { sharedDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** No periodic reload during a test: only the admin's own. */
const NEVER_MS = 600_000;
const SCOPE: Scope = { app: 'app', env: 'env', tenant: undefined };
const silent = createLogger({ level: 'silent' });

const shared = sharedDeliveryFixture();

/** A scheduler (the embedded one) that keeps every batch of heads it is told are due now. */
function recordingScheduler(): DeliveryScheduler & { readonly batches: LaneHead[][] } {
  const wake = createLocalWake();
  const batches: LaneHead[][] = [];
  return {
    ...wake,
    batches,
    scheduleNow(heads) {
      batches.push([...heads]);
      return wake.scheduleNow(heads);
    },
  };
}

function adminOf(endpoints: EndpointCache, scheduler: DeliveryScheduler): WebhookAdmin {
  const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 60_000 }, publish: () => undefined });
  const statistics = createDeliveryStatistics({ db: shared.db, logger: silent });
  const admin = createWebhookAdmin({ db: shared.db, log, endpoints, scheduler, statistics, allowPrivateTargets: true, maxBodyBytes: 262_144, logger: silent });
  onTestFinished(async () => {
    await admin.close();
    await statistics.close();
    await log.close();
  });
  return admin;
}

/** The endpoint's deliveries due later than now. */
async function dueLater(endpointId: string): Promise<string[]> {
  const { rows } = await shared.db.query<{ id: string }>(`SELECT id::text AS id FROM webhook_deliveries WHERE endpoint_id = $1 AND next_attempt_at > now() AND next_attempt_at < 'infinity' ORDER BY id`, [endpointId]);
  return rows.map((row) => row.id);
}

/**
 * `lanes` lanes of the endpoint with deliveries waiting for it: a head each, put back for an hour,
 * and `behind` more in each (waiting for their head: stored at 'infinity', migration 0024).
 */
async function backlog(endpointId: string, lanes: number, behind = 0): Promise<string[]> {
  const { rows } = await shared.db.query<{ id: string; head: boolean }>(
    `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, topic, lane, body, trigger, event_time, next_attempt_at)
     SELECT $1, 'ev-' || l || '-' || n, 'order.updated', 'orders', 'order-' || l, '{}', 'initial', now(), CASE WHEN n = 0 THEN now() + interval '1 hour' ELSE now() END
       FROM generate_series(0, $3::int) n, generate_series(1, $2::int) l ORDER BY n, l
     RETURNING id::text AS id, next_attempt_at > now() AND next_attempt_at < 'infinity' AS head`,
    [endpointId, lanes, behind],
  );
  return rows.filter((row) => row.head).map((row) => row.id);
}

describe('webhook admin', () => {
  it('answers create and rotate with their secret, and an enable still resumes, when this instance cannot reload its endpoints', async () => {
    // This instance's endpoints are read through a pool of their own, closed: every reload fails, as with its Postgres away.
    const cacheDb = createPostgresDatabase({ url: shared.fixture.url, logger: silent });
    const logs = captureLogs();
    const endpoints = await createEndpointCache({ db: cacheDb, refreshMs: NEVER_MS, logger: createLogger({ level: 'warn', destination: logs }) });
    onTestFinished(() => endpoints.close());
    await cacheDb.close();
    const scheduler = recordingScheduler();
    const admin = adminOf(endpoints, scheduler);

    const created = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders'] });
    const stored = async () => (await shared.db.query<{ secret: string }>('SELECT secret FROM webhook_endpoints WHERE id = $1', [created.endpoint.id])).rows[0]?.secret;
    expect(await stored()).toBe(created.secret);
    const rotated = await admin.rotateSecret(SCOPE, created.endpoint.id, 0);
    expect(rotated.secret).not.toBe(created.secret);
    expect(await stored()).toBe(rotated.secret);

    // Disabled, a delivery put back for it, enabled: due at once, and scheduled.
    expect(await admin.setEnabled(SCOPE, created.endpoint.id, false)).toMatchObject({ enabled: false });
    const [waiting] = await backlog(created.endpoint.id, 1);
    expect(await admin.setEnabled(SCOPE, created.endpoint.id, true)).toMatchObject({ enabled: true });
    expect(await dueLater(created.endpoint.id)).toEqual([]);
    expect(scheduler.batches.flat()).toEqual([{ id: waiting, endpointId: created.endpoint.id }]);

    // Each failed reload told, with the endpoint's id — never a secret.
    const warnings = logs.lines.filter((line) => line.level === 40);
    expect(warnings).toHaveLength(4);
    expect(warnings.every((line) => line['endpoint'] === created.endpoint.id)).toBe(true);
    expect(JSON.stringify(logs.lines)).not.toContain(created.secret);
    expect(JSON.stringify(logs.lines)).not.toContain(rotated.secret);
  });

  it('makes a page of a large backlog due before an enable answers, the rest in the background, each head scheduled once', async () => {
    const endpoints = await createEndpointCache({ db: shared.db, refreshMs: NEVER_MS, logger: silent });
    onTestFinished(() => endpoints.close());
    const scheduler = recordingScheduler();
    const admin = adminOf(endpoints, scheduler);
    const { endpoint } = await admin.createEndpoint(SCOPE, { url: 'http://127.0.0.1:9/hook', events: ['orders'] });
    await admin.setEnabled(SCOPE, endpoint.id, false);
    // Two and a half pages of lanes, two deliveries waiting behind each head.
    const heads = await backlog(endpoint.id, 2.5 * RESUME_PAGE_LANES, 2);

    await admin.setEnabled(SCOPE, endpoint.id, true);
    // What the request scheduled: one page. (The background's first page has not come back from
    // Postgres yet when the answer's continuation runs.)
    expect(scheduler.batches.map((batch) => batch.length)).toEqual([RESUME_PAGE_LANES]);

    await waitFor(async () => (await dueLater(endpoint.id)).length === 0, { timeoutMs: 20_000, message: 'every head made due' });
    await admin.close();
    expect(scheduler.batches.every((batch) => batch.length <= RESUME_PAGE_LANES)).toBe(true);
    const scheduled = scheduler.batches.flat().map((head) => head.id);
    expect(scheduled.toSorted()).toEqual(heads.toSorted());
  });
});
