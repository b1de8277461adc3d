/**
 * Sync documents: revisioned JSON documents on the platform database, with the Redis hot cache in
 * front of it when Redis is configured (the seed's hybrid service).
 */
import { createCleanupStack } from '../cleanup-stack.ts';
import { createCachedDocumentService } from '../pipeline/sync/cached-documents.ts';
import type { DocumentService } from '../pipeline/sync/documents.ts';
import { createPostgresDocumentService } from '../pipeline/sync/postgres-documents.ts';
import { watchEvictionPolicy } from '../pipeline/sync/redis-policy.ts';
import type { ReadinessCheck } from '../server/http-server.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Sync extends Disposable {
  readonly documents: DocumentService;
  /**
   * What `/ready` should ask of this subsystem besides the database and Redis: with Redis in `async`
   * durability, `redis-eviction-policy` (failing while Redis may evict dirty document entries; see
   * `redis-policy.ts`). In `sync` durability the database has every acknowledged change: none.
   */
  readonly readiness: readonly ReadinessCheck[];
}

export function startSync({ config, clients, metrics, logger }: StartContext, { router }: Pick<Pipeline, 'router'>): Sync {
  const { db, redis } = clients;
  if (redis === undefined) {
    const documents = createPostgresDocumentService({ db, router, logger });
    return { documents, readiness: [], dispose: () => documents.close() };
  }
  // Watched before the cache serves anything: an eviction policy that loses acknowledged writes is
  // reported as soon as the connection is ready.
  const cleanup = createCleanupStack(logger);
  const policy = watchEvictionPolicy({ redis: redis.command, durability: config.sync.durability, metrics, logger });
  cleanup.push('eviction policy watch', () => Promise.resolve(policy.dispose()));
  const documents = createCachedDocumentService({
    db,
    redis: redis.command,
    keyPrefix: config.redisKeyPrefix,
    router,
    logger,
    durability: config.sync.durability,
    ttlSeconds: config.sync.docTtlSeconds,
    sweepIntervalMs: config.sync.sweepIntervalMs,
  });
  cleanup.push('documents', () => documents.close());
  return {
    documents,
    readiness: config.sync.durability === 'async' ? [{ name: 'redis-eviction-policy', check: () => policy.check() }] : [],
    dispose: () => cleanup.run(),
  };
}
