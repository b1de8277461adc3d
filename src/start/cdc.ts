/**
 * Database CDC: source databases and their mappings (kept in the platform database), and the WAL
 * readers this instance leads (one per source database across all instances, by leader election).
 */
import { randomUUID } from 'node:crypto';
import { createCleanupStack } from '../cleanup-stack.ts';
import { createCdcService, type CdcService, type WalOutboxCatalog } from '../pipeline/cdc/cdc-service.ts';
import { createCdcStore, type CdcStore } from '../pipeline/cdc/cdc-store.ts';
import { createSourceConnections } from '../pipeline/cdc/wal/source-connections.ts';
import { OUTBOX_CONNECTION_LIMITS } from '../pipeline/outbox/outbox-pool.ts';
import { listOutboxSources, saveOutboxError, saveOutboxRate, saveOutboxReport, writeDeadRowTally } from '../pipeline/outbox/outbox-store.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Cdc extends Disposable {
  readonly cdc: CdcService;
  readonly cdcStore: CdcStore;
}

export async function startCdc({ config, clients, metrics, logger }: StartContext, { router, log }: Pick<Pipeline, 'router' | 'log'>): Promise<Cdc> {
  const cdcStore = createCdcStore(clients.db);
  const reporter = randomUUID();
  // WAL-mode outboxes are read by the CDC reader of their database; their figures go where the pollers' go.
  const outboxes: WalOutboxCatalog = {
    async list() {
      const sources = await listOutboxSources(clients.db);
      return sources
        .filter((source) => source.readMode === 'WAL')
        .map((source) => ({
          databaseUrl: source.databaseUrl,
          table: source.table,
          outboxId: source.outboxId,
          scope: { app: source.app, env: source.env },
          requireTenant: source.requireTenant,
          maxPayloadBytes: config.events.maxPayloadBytes,
        }));
    },
    async report({ binding, pending, oldestPendingSeconds = null, dead, routed, deadRows, lastError }, seconds) {
      const source = { ...binding.scope, outboxId: binding.outboxId };
      // First, as the pollers do; the reader keeps the counts until this succeeds.
      await writeDeadRowTally(clients.db, binding.outboxId, deadRows);
      // The reader hands its last figures along with an error (the outbox unreadable, the reader
      // not started, the catch-up failing): saved as measured now, they would hide a growing backlog.
      if (lastError !== null) await saveOutboxError(clients.db, source, lastError);
      else if (pending !== undefined && dead !== undefined) await saveOutboxReport(clients.db, source, { pending, oldestPendingSeconds, dead, lastError });
      await saveOutboxRate(clients.db, binding.outboxId, reporter, seconds > 0 ? routed / seconds : 0);
    },
    retentionMs: config.outbox.retentionMs,
  };
  const cdc = createCdcService({
    store: cdcStore,
    router,
    log,
    logger,
    connect: (url) => createSourceConnections(url, { logger }),
    connectOutbox: (url) => createSourceConnections(url, { ...OUTBOX_CONNECTION_LIMITS, applicationName: 'tributary-outbox', logger }),
    redis: clients.redis?.command,
    subscriber: clients.redis?.subscriber,
    keyPrefix: config.redisKeyPrefix,
    ...config.cdc,
    metrics,
    outboxes,
  });
  const cleanup = createCleanupStack(logger);
  cleanup.push('cdc service', () => cdc.close());
  const stopSampling = metrics.sample({
    cdcReaders: () => cdc.leading(),
    outboxes: () =>
      cdc.leadingOutboxes().flatMap(({ binding, pending, oldestPendingSeconds = null }) =>
        pending === undefined ? [] : [{ outbox: `${binding.scope.app}/${binding.scope.env}`, pending, oldestPendingSeconds }],
      ),
  });
  cleanup.push('cdc sampling', () => Promise.resolve(stopSampling()));
  try {
    await cdc.start();
  } catch (error) {
    await cleanup.run();
    throw error;
  }
  return { cdc, cdcStore, dispose: () => cleanup.run() };
}
