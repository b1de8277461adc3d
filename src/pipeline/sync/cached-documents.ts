import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Database } from '../../db/database.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import { createKeyedSerial } from '../coordination/keyed-serial.ts';
import type { EventRouter } from '../router/event-router.ts';
import { createDocumentCache, type CachedEntry } from './document-cache.ts';
import { createDocumentEventPublisher } from './document-events.ts';
import { createDocumentFlusher } from './document-flusher.ts';
import { decideWrite, documentOf, type DocumentChange, type DocumentState, type WriteCommand } from './document-writes.ts';
import { DEFAULT_MAX_DOCUMENT_BYTES, documentEntity, type DocumentKey, type DocumentService, type SyncDocument } from './documents.ts';
import { KEY_MATCH, keyParams, stateOf, type DocumentRow } from './postgres-documents.ts';

/**
 * `async`: a write returns once Redis holds it; Postgres follows right after (and the sweep
 * catches up what failed). A Redis crash loses the writes not flushed yet — at most
 * `UNFLUSHED_REVISIONS_LIMIT` revisions of a document.
 * `sync`: a write returns only after Postgres committed it; a Redis crash loses nothing.
 */
export type SyncDurability = 'async' | 'sync';

/**
 * How many revisions of a document the cache may acknowledge ahead of Postgres. A write past it
 * waits for Postgres to raise the document's ceiling (normally the flush raises it first); when
 * Postgres is down, a document takes this many more writes and then answers UNAVAILABLE.
 */
export const UNFLUSHED_REVISIONS_LIMIT = 64;

export interface CachedDocumentServiceOptions {
  readonly db: Database;
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly router: EventRouter;
  readonly logger: Logger;
  readonly durability: SyncDurability;
  /** Lifetime of a clean cache entry (dirty entries never expire). */
  readonly ttlSeconds: number;
  /** @default 5000 */
  readonly sweepIntervalMs?: number;
  /** Largest document, in bytes of JSON. @default DEFAULT_MAX_DOCUMENT_BYTES */
  readonly maxDocumentBytes?: number;
}

/** Conditional writes refused by a concurrent writer (another instance) before giving up. */
const MAX_WRITE_ATTEMPTS = 16;
/** Lifetime of a document's write lock: how long a dead holder blocks the document. */
const LOCK_TTL_MS = 3000;
/** Longest wait for a document's write lock before answering UNAVAILABLE. */
const LOCK_WAIT_MS = 5000;
/** Retries of a taken lock: soon at first (a write holds it for milliseconds), then every 50 ms. */
const LOCK_RETRY = { initialMs: 1, maxMs: 50 };

/** With the cache's columns (migration 0002). */
type Row = DocumentRow & { ceiling: number; cache_epoch: string | null };

const COLUMNS = 'id, revision, data, deleted, created_at, updated_at, ceiling, cache_epoch';

/**
 * The seed's HybridDocumentService: Redis holds the hot documents and decides every write (a Lua
 * script checks the revision and writes atomically, across instances); Postgres is the durable
 * store, written after (`async`) or before the answer (`sync`). A cache miss loads the document
 * from Postgres.
 *
 * Revisions never go backwards: the cache never acknowledges a revision above the document's
 * ceiling in Postgres, and a document loaded into a cache of a newer epoch (Redis lost its data
 * or restarted) resumes above that ceiling. See `document-cache.ts` and migration 0002.
 *
 * A document's writers take turns — in this instance, then across instances with a lock in Redis
 * — from reading it to publishing the change, so its events are published in revision order
 * whichever instance writes. The conditional write keeps revisions exact even without the lock
 * (a holder that outlived it); a `document` subscription that then sees a gap or disorder asks its
 * client to resync rather than skip a change.
 */
export function createCachedDocumentService(options: CachedDocumentServiceOptions): DocumentService {
  const { db, durability } = options;
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const logger = options.logger.child({ component: 'sync-cache' });
  const cache = createDocumentCache({ redis: options.redis, keyPrefix: options.keyPrefix, ttlMs: options.ttlSeconds * 1000 });
  const flusher = createDocumentFlusher({
    db,
    cache,
    logger,
    ceilingHeadroom: UNFLUSHED_REVISIONS_LIMIT,
    ...(options.sweepIntervalMs !== undefined && { sweepIntervalMs: options.sweepIntervalMs }),
  });
  const events = createDocumentEventPublisher(options.router, options.logger);
  const writeTurns = createKeyedSerial();

  // A restarted Redis may hold an older snapshot than what was acknowledged: new epoch. Until the
  // check for the current connection is done, document commands wait for it.
  let epochChecked = Promise.resolve();
  const checkEpoch = () => {
    epochChecked = cache.rotateEpochOnRestart().catch((error: unknown) => {
      logger.warn({ err: error }, 'could not check the document cache epoch');
    });
  };
  if (options.redis.status === 'ready') checkEpoch();
  options.redis.on('ready', checkEpoch);

  /**
   * The document as the cache has it, loaded from Postgres when missing or stale. A document
   * Postgres has never seen is cached only for a write (reads of random ids do not fill Redis).
   */
  const current = async (key: DocumentKey, purpose: 'read' | 'write'): Promise<{ entryKey: string; entry: CachedEntry }> => {
    await epochChecked;
    const entryKey = cache.entryKey(key);
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt += 1) {
      const read = await cache.read(entryKey);
      if (read.status === 'hit') return { entryKey, entry: read.entry };
      const epoch = await cache.epoch();
      const row = await loadRow(key);
      const stale = read.status === 'stale' ? read.entry : undefined;
      const entry = reconcile(row, stale, epoch);
      if (!row && !stale && purpose === 'read') return { entryKey, entry: { ...entry, epoch } };
      if ((await cache.install(key, epoch, stale?.epoch, entry)) === 'ok') return { entryKey, entry: { ...entry, epoch } };
    }
    throw contention();
  };

  const loadRow = async (key: DocumentKey): Promise<Row | undefined> => {
    try {
      const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM sync_documents WHERE ${KEY_MATCH}`, keyParams(key));
      return rows[0];
    } catch (error) {
      throw databaseUnavailable(error);
    }
  };

  /** Raises the document's ceiling in Postgres (creating a placeholder row for a new document). */
  const raiseCeiling = async (key: DocumentKey, entryKey: string, epoch: string, revision: number): Promise<void> => {
    let rows;
    try {
      ({ rows } = await db.query<{ ceiling: number }>(
        `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data, deleted, ceiling, cache_epoch)
         VALUES ($1, $2, $3, $4, $5, 0, '{}', true, $6, $7)
         ON CONFLICT (app, env, tenant, service, id) DO UPDATE
           SET ceiling = GREATEST(sync_documents.ceiling, excluded.ceiling), cache_epoch = excluded.cache_epoch
         RETURNING ceiling`,
        [...keyParams(key), revision + UNFLUSHED_REVISIONS_LIMIT, epoch],
      ));
    } catch (error) {
      throw databaseUnavailable(error);
    }
    await cache.raiseCeiling(entryKey, epoch, rows[0]!.ceiling);
  };

  /**
   * Takes the document's lock in Redis, so that writers on every instance take turns from the
   * revision check to the published event: a document's events are published in revision order
   * whichever instances write it. A holder that dies loses the lock after LOCK_TTL_MS.
   */
  const withDocumentLock = async <T>(entryKey: string, work: () => Promise<T>): Promise<T> => {
    const token = randomUUID();
    const deadline = performance.now() + LOCK_WAIT_MS;
    const backoff = createBackoff(LOCK_RETRY);
    while (!(await cache.tryLock(entryKey, token, LOCK_TTL_MS))) {
      if (performance.now() > deadline) throw contention();
      await pause(backoff.next());
    }
    try {
      return await work();
    } finally {
      await cache.unlock(entryKey, token).catch((error: unknown) => logger.warn({ err: error }, 'document lock not released; it expires'));
    }
  };

  const write = (key: DocumentKey, command: WriteCommand): Promise<SyncDocument> =>
    // One writer per document in this instance at a time, then across instances.
    writeTurns.run([documentEntity(key)], () =>
      withDocumentLock(cache.entryKey(key), async () => {
        const { change, entryKey } = await decideAndWrite(key, command);
        if (durability === 'async') {
          flusher.schedule(entryKey);
          await events.publish(key, change);
          return documentOf(key, change);
        }
        // sync: answered only once Postgres has it. A failed flush leaves the change in the cache
        // (it is visible there and will be flushed later), so its event still goes out.
        const flushed = await flusher.flush(entryKey).then(
          () => undefined,
          (error: unknown) => error,
        );
        await events.publish(key, change);
        if (flushed !== undefined) {
          throw new TributaryError(
            ErrorCode.UNAVAILABLE,
            `The change was saved as revision ${change.after.revision} in the cache but not yet in the database; it will be written when the database is back`,
            { cause: flushed, details: { revision: change.after.revision } },
          );
        }
        return documentOf(key, change);
      }),
    );

  /** Reads the document, decides the change and writes it if the revision is still the one read. */
  const decideAndWrite = async (key: DocumentKey, command: WriteCommand): Promise<{ change: DocumentChange; entryKey: string }> => {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt += 1) {
      const { entryKey, entry } = await current(key, 'write');
      const change: DocumentChange = decideWrite(key, entry.state, command, maxBytes, new Date());
      const result = await cache.write(entryKey, entry.epoch, entry.state.revision, change.after);
      if (result === 'ok') return { change, entryKey };
      if (result === 'ceiling') await raiseCeiling(key, entryKey, entry.epoch, change.after.revision);
      // 'miss', 'stale', 'race': the entry changed under us (expiry, new epoch, a writer without the lock); read again.
    }
    throw contention();
  };

  return {
    async get(key) {
      const { entry } = await current(key, 'read');
      return entry.state.deleted ? undefined : documentAt(key, entry.state);
    },

    async list(scope, service, { first, after }) {
      // Postgres knows every document (a new one has a placeholder row from its first write); the
      // cache may hold newer states of them.
      const documents: SyncDocument[] = [];
      let cursor = after ?? '';
      for (;;) {
        let rows;
        try {
          ({ rows } = await db.query<{ id: string }>(
            `SELECT id FROM sync_documents WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id COLLATE "C" > $5
              ORDER BY id COLLATE "C" LIMIT $6`,
            [scope.app, scope.env, scope.tenant ?? '', service, cursor, first + 1],
          ));
        } catch (error) {
          throw databaseUnavailable(error);
        }
        for (const { id } of rows) {
          const key = { scope, service, id };
          const { entry } = await current(key, 'read');
          if (entry.state.deleted) continue;
          if (documents.length === first) return { documents, hasNextPage: true };
          documents.push(documentAt(key, entry.state));
        }
        if (rows.length <= first) return { documents, hasNextPage: false };
        cursor = rows[rows.length - 1]!.id;
      }
    },

    create: (key, data) => write(key, { kind: 'create', data }),
    replace: (key, data, expectedRevision) => write(key, { kind: 'replace', data, expectedRevision }),
    merge: (key, patch, expectedRevision) => write(key, { kind: 'merge', patch, expectedRevision }),
    delete: (key, expectedRevision) => write(key, { kind: 'delete', expectedRevision }),

    async close() {
      options.redis.off('ready', checkEpoch);
      await flusher.close();
    },
  };
}

/**
 * The entry to install for a document that is not in the cache (or is, from an older epoch):
 * the newer of Postgres's row and the stale entry, moved above the stored ceiling when revisions up
 * to it may have been acknowledged by a cache that has since lost them.
 */
export function reconcile(row: Row | undefined, stale: CachedEntry | undefined, epoch: string): Omit<CachedEntry, 'epoch'> {
  const stored: DocumentState = row ? stateOf(row) : { revision: 0, data: {}, deleted: true, createdAt: new Date(0), updatedAt: new Date(0) };
  const flushed = stored.revision;
  const ceiling = row?.ceiling ?? 0;
  const base = stale && stale.state.revision > stored.revision ? stale.state : stored;
  const mayHaveLost = row !== undefined && row.cache_epoch !== null && row.cache_epoch !== epoch && ceiling > base.revision;
  if (!mayHaveLost) return { state: base, ceiling: Math.max(ceiling, base.revision), flushed };
  // A new revision above anything acknowledged before, with the last state known to survive.
  return { state: { ...base, revision: ceiling + 1, updatedAt: new Date() }, ceiling, flushed };
}

function documentAt(key: DocumentKey, state: DocumentState): SyncDocument {
  return { service: key.service, id: key.id, revision: state.revision, data: state.data, createdAt: state.createdAt, updatedAt: state.updatedAt };
}

function contention(): TributaryError {
  return new TributaryError(ErrorCode.UNAVAILABLE, 'The document is being written by many writers at once; retry shortly');
}

function databaseUnavailable(cause: unknown): TributaryError {
  if (cause instanceof TributaryError) return cause;
  return new TributaryError(ErrorCode.UNAVAILABLE, 'The database is unavailable right now; retry shortly', { cause });
}
