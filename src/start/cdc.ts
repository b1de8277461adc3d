/**
 * Database CDC: source databases and their mappings (kept in the platform database), and the WAL
 * readers this instance leads (one per source database across all instances, by leader election).
 */
import { createCdcService, type CdcService } from '../pipeline/cdc/cdc-service.ts';
import { createCdcStore, type CdcStore } from '../pipeline/cdc/cdc-store.ts';
import { createSourceConnections } from '../pipeline/cdc/wal/source-connections.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Cdc extends Disposable {
  readonly cdc: CdcService;
  readonly cdcStore: CdcStore;
}

export async function startCdc({ config, clients, metrics, logger }: StartContext, { router, log }: Pick<Pipeline, 'router' | 'log'>): Promise<Cdc> {
  const cdcStore = createCdcStore(clients.db);
  const cdc = createCdcService({
    store: cdcStore,
    router,
    log,
    logger,
    connect: (url) => createSourceConnections(url),
    redis: clients.redis?.command,
    subscriber: clients.redis?.subscriber,
    keyPrefix: config.redisKeyPrefix,
    ...config.cdc,
    metrics,
  });
  const stopSampling = metrics.sample({ cdcReaders: () => cdc.leading() });
  try {
    await cdc.start();
  } catch (error) {
    stopSampling();
    await cdc.close();
    throw error;
  }
  return {
    cdc,
    cdcStore,
    async dispose() {
      stopSampling();
      await cdc.close();
    },
  };
}
