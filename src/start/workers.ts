/**
 * The workers role: background work that needs no socket — the outbox pollers, webhook
 * delivery and alert evaluation. It runs in its own processes (`npm run workers`, any number of them) next to
 * servers, or inside the one process of `npm start` (role `all`).
 */
import { createOutboxPool } from '../pipeline/outbox/outbox-pool.ts';
import { startAlertEvaluation } from '../workers/alerts.ts';
import { createOutboxPollers } from '../workers/outbox-pollers.ts';
import { startWebhookDelivery } from '../workers/webhook-delivery.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Workers extends Disposable {
  /** The names of the workers this process runs. */
  readonly running: readonly string[];
}

export async function startWorkers({ config, clients, metrics, logger }: StartContext, { pipeline }: { readonly pipeline: Pipeline }): Promise<Workers> {
  const outbox = createOutboxPollers({
    db: clients.db,
    connect: (url) => createOutboxPool(url, logger),
    router: pipeline.router,
    logger,
    metrics,
    pollIntervalMs: config.outbox.pollIntervalMs,
    retentionMs: config.outbox.retentionMs,
    maxPayloadBytes: config.events.maxPayloadBytes,
  });
  // A source that cannot be reached is reported in its status; it never stops the process.
  await outbox.refresh().catch((error: unknown) => logger.error({ err: error }, 'outbox sources could not be loaded'));
  const webhooks = startWebhookDelivery({
    config,
    db: clients.db,
    redis: clients.redis?.command,
    router: pipeline.router,
    webhooks: pipeline.webhooks,
    logger,
    metrics,
  });
  const alerts = startAlertEvaluation({ config: config.alerts, db: clients.db, router: pipeline.router, logger, metrics });
  const running = ['outbox', 'webhooks', 'alerts'];
  logger.info({ workers: running }, 'workers ready');
  return {
    running,
    async dispose() {
      await alerts.close();
      await webhooks.close();
      await outbox.close();
    },
  };
}
