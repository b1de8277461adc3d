/**
 * The backlog of the `webhooks` drain for one Tributary mode, written without a server: a server
 * would take minutes to store 10,000 deliveries from publishes here, and that measures the publish
 * path, not delivery. The runner writes what a server and its routing tap would, with the engine's
 * own functions, so the drain server finds exactly what production leaves for it.
 */
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createBullmqScheduler } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';
import { storeDeliveries, type NewDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { clockMillis } from '../lib/fanout-payload.ts';
import { formatMillis } from '../lib/stats.ts';
import { benchEventId, deliveredBody, WEBHOOK_TOPIC } from '../lib/webhook-payload.ts';

export interface BacklogOptions {
  /** The mode's platform database, empty. */
  readonly databaseUrl: string;
  /** The receiver the endpoint points at. */
  readonly url: string;
  /** The endpoint's maxConcurrency. */
  readonly concurrency: number;
  /** With Redis (BullMQ mode): its URL and the drain server's REDIS_KEY_PREFIX; undefined for the embedded mode. */
  readonly redisUrl: string | undefined;
  readonly redisKeyPrefix: string;
  /** The deliveries carry events `firstSeq … firstSeq + count − 1`. */
  readonly firstSeq: number;
  readonly count: number;
}

/** Deliveries written per statement while seeding. */
const SEED_CHUNK = 1000;

/**
 * Prepares a mode's platform database and writes its backlog with the engine's own functions, as
 * a server would: the migrations, one endpoint (the development principal's scope, selecting the
 * topic, `maxConcurrency` = the drain's concurrency — what `createWebhookEndpoint` stores), then
 * the deliveries as the routing tap writes them (src/pipeline/webhooks/webhook-tap.ts):
 * `storeDeliveries`, and with Redis the lane heads handed to the BullMQ scheduler — a job each,
 * in the queue the server's workers take from (its key prefix + `bull`, as start/pipeline.ts
 * names it). Every event is its own lane, as a published event without an entity is. No server
 * runs meanwhile, so nothing is delivered before the drain. Resolves with a note for the table.
 */
export async function seedBacklog(options: BacklogOptions): Promise<string> {
  const logger = createLogger({ level: 'silent' });
  const started = performance.now();
  const db = createPostgresDatabase({ url: options.databaseUrl, logger, applicationName: 'bench-webhooks-seed' });
  const scheduler = options.redisUrl === undefined ? undefined : createBullmqScheduler({ redisUrl: options.redisUrl, prefix: `${options.redisKeyPrefix}bull`, logger });
  let queued = 0;
  try {
    await migrate(db, { logger });
    const endpoint = await insertEndpoint(db, {
      app: 'default',
      env: 'default',
      tenant: 'default',
      url: options.url,
      description: 'bench drain receiver',
      events: [WEBHOOK_TOPIC],
      rateLimitPerSecond: null,
      maxConcurrency: options.concurrency,
      secret: newWebhookSecret(),
    });
    for (let offset = 0; offset < options.count; offset += SEED_CHUNK) {
      const deliveries: NewDelivery[] = [];
      for (let index = offset; index < Math.min(options.count, offset + SEED_CHUNK); index += 1) {
        const eventId = benchEventId();
        const body = deliveredBody(options.firstSeq + index, clockMillis(), eventId);
        deliveries.push({ endpointId: endpoint.id, eventId, eventType: 'message', topic: WEBHOOK_TOPIC, lane: `event:${eventId}`, body, trigger: 'initial', eventTime: new Date() });
      }
      const { heads } = await storeDeliveries(db, deliveries);
      if (scheduler) {
        await scheduler.schedule(heads);
        queued += heads.length;
      }
    }
    // Fresh planner statistics, as a table that grew in production would have.
    await db.exec('ANALYZE');
  } finally {
    await scheduler?.close();
    await db.close();
  }
  const jobs = scheduler ? `, ${queued.toLocaleString('en-US')} jobs queued` : '';
  return `${options.count.toLocaleString('en-US')} deliveries stored${jobs} in ${formatMillis(performance.now() - started)}`;
}
