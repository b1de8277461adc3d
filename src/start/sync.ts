/**
 * Sync documents: revisioned JSON documents on the platform database, with the Redis hot cache in
 * front of it when Redis is configured (the seed's hybrid service).
 */
import { createCachedDocumentService } from '../pipeline/sync/cached-documents.ts';
import type { DocumentService } from '../pipeline/sync/documents.ts';
import { createPostgresDocumentService } from '../pipeline/sync/postgres-documents.ts';
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Sync extends Disposable {
  readonly documents: DocumentService;
}

export function startSync({ config, clients, logger }: StartContext, { router }: Pick<Pipeline, 'router'>): Sync {
  const { db, redis } = clients;
  const documents =
    redis === undefined
      ? createPostgresDocumentService({ db, router, logger })
      : createCachedDocumentService({
          db,
          redis: redis.command,
          keyPrefix: config.redisKeyPrefix,
          router,
          logger,
          durability: config.sync.durability,
          ttlSeconds: config.sync.docTtlSeconds,
          sweepIntervalMs: config.sync.sweepIntervalMs,
        });
  return { documents, dispose: () => documents.close() };
}
