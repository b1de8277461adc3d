import type { Redis } from 'ioredis';
import type { Database } from '../../db/database.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { createKeyedSerial } from '../coordination/keyed-serial.ts';
import type { EventRouter } from '../router/event-router.ts';
import { createDocumentCache, isDocumentCacheUnavailable, isWriteOutcomeUnknown, type CachedEntry, type ReadResult, type WriteResult } from './document-cache.ts';
import { createDocumentCommits } from './document-commits.ts';
import { createDocumentEventPublisher, documentEventOf } from './document-events.ts';
import { createDocumentFlusher } from './document-flusher.ts';
import { contention, tryDocumentLock, withDocumentLock } from './document-lock.ts';
import { extendCeiling, reconcile, releaseLeases } from './document-leases.ts';
import { listLiveDocuments, selectDocument, stateOf, type DocumentRow } from './document-store.ts';
import { decideWrite, documentOf, type DocumentChange, type DocumentState, type WriteCommand } from './document-writes.ts';
import {
  DEFAULT_MAX_DOCUMENT_BYTES,
  documentEntity,
  type DocumentKey,
  type DocumentService,
  type DocumentSnapshot,
  type SyncDocument,
} from './documents.ts';
import { confirmLostWrite } from './lost-writes.ts';
import { listDocuments, snapshotOfRow } from './postgres-documents.ts';
import { createRepublisher } from './republisher.ts';
import { createPostgresMarks, DEFAULT_REPUBLISH_GRACE_MS, encodeEvent, type DocumentEvent } from './unpublished-events.ts';
import { createRedisMarks } from './unpublished-redis.ts';

/**
 * `async`: a write returns once Redis holds it; Postgres follows right after (and the sweep
 * catches up what failed). A Redis crash loses the writes not flushed yet — at most
 * `UNFLUSHED_REVISIONS_LIMIT` revisions of a document.
 * `sync`: a write returns, and readers see it, only after Postgres committed it; a Redis crash
 * loses nothing.
 */
export type SyncDurability = 'async' | 'sync';

/**
 * How many revisions of a document the cache may acknowledge ahead of Postgres. A write past it
 * waits for Postgres to raise the document's ceiling (normally the flush raises it first), which
 * it grants this far past the revision it has: while Postgres is down, slow or refusing the
 * document's changes, a document takes this many more writes and then answers UNAVAILABLE.
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
  /** How long a change's event may stay unpublished before the sweep publishes it again. @default DEFAULT_REPUBLISH_GRACE_MS */
  readonly republishGraceMs?: number;
  /** How often that sweep runs. @default sweepIntervalMs */
  readonly republishIntervalMs?: number;
  /** How long a write whose cache reply was lost asks the cache what it did (`lost-writes.ts`), in ms. @default CONFIRM_WAIT_MS */
  readonly lostWriteWaitMs?: number;
}

/** Conditional writes refused by a concurrent writer (another instance) before giving up. */
const MAX_WRITE_ATTEMPTS = 16;
/** Longest wait for a document's write turn, in this instance then across instances, before answering UNAVAILABLE. */
const LOCK_WAIT_MS = 5000;

/**
 * The seed's HybridDocumentService: Redis holds the hot documents and decides every write (a Lua
 * script checks the revision and writes atomically, across instances); Postgres is the durable
 * store, written after (`async`) or before the answer (`sync`). A cache miss loads the document
 * from Postgres.
 *
 * Revisions never go backwards, and a document moves up only when a lost cache may have
 * acknowledged revisions Postgres lacks: see `document-leases.ts` and migration 0002.
 *
 * A document's writers take turns — in this instance, then across instances with a lock in Redis
 * — from reading it to publishing the change, so its events normally leave in revision order
 * whichever instance writes. Across instances this is not a guarantee: the lock is not extended
 * (a write that outlives LOCK_TTL_MS — a stalled Postgres — lets the next writer in). Each event
 * is marked unpublished with its change (`unpublished-events.ts`) and a write publishes the
 * document's earlier marked events before its own, so a change answered UNAVAILABLE in sync
 * durability and committed since goes out ahead of the next change, whichever instance makes it
 * (its own instance then finds it published). What a late writer still publishes after a later
 * revision is a second copy, with the same id. The conditional write keeps revisions exact; a
 * `document` subscription that sees a gap or disorder asks its client to resync.
 */
export function createCachedDocumentService(options: CachedDocumentServiceOptions): DocumentService {
  const { db, durability } = options;
  const acknowledgedFirst = durability === 'async';
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const logger = componentLogger(options.logger, 'sync-cache');
  const cache = createDocumentCache({ redis: options.redis, keyPrefix: options.keyPrefix, ttlMs: options.ttlSeconds * 1000 });
  const graceMs = options.republishGraceMs ?? DEFAULT_REPUBLISH_GRACE_MS;
  const flusher = createDocumentFlusher({
    db,
    cache,
    logger,
    ceilingHeadroom: acknowledgedFirst ? UNFLUSHED_REVISIONS_LIMIT : 0,
    compareAndSet: !acknowledgedFirst,
    republishGraceMs: graceMs,
    ...(options.sweepIntervalMs !== undefined && { sweepIntervalMs: options.sweepIntervalMs }),
  });
  // Events are marked unpublished where their change is saved: in Redis when acknowledged first
  // (async), in Postgres otherwise (sync: by the flush). See `unpublished-events.ts`.
  const marks = acknowledgedFirst
    ? createRedisMarks({ redis: options.redis, keyPrefix: options.keyPrefix, entryKey: (key) => cache.entryKey(key), graceMs })
    : createPostgresMarks(db, graceMs);
  const events = createDocumentEventPublisher(options.router, marks, options.logger);
  const publishTurns = createKeyedSerial();
  const commits = createDocumentCommits({ db, cache, flusher, events, turns: publishTurns, logger });
  const writeTurns = createKeyedSerial();
  const republisher = createRepublisher({
    marks,
    publisher: events,
    turns: publishTurns,
    // A document being written is left to its writer, which publishes its earlier events first.
    lock: (key, work) => tryDocumentLock(cache, cache.entryKey(key), logger, work),
    logger: options.logger,
    intervalMs: options.republishIntervalMs ?? options.sweepIntervalMs ?? 5000,
  });
  let closed: Promise<void> | undefined;

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
      const lease = await cache.lease();
      const row = await loadRow(key);
      const stale = read.status === 'stale' ? read.entry : undefined;
      const entry = reconcile(row, stale, lease);
      if (!row && !stale && purpose === 'read') return { entryKey, entry: { ...entry, epoch: lease.epoch } };
      if ((await cache.install(key, lease.epoch, stale?.epoch, entry)) === 'ok') return { entryKey, entry: { ...entry, epoch: lease.epoch } };
    }
    throw contention();
  };

  const loadRow = (key: DocumentKey): Promise<DocumentRow | undefined> => selectDocument(db, key);

  /**
   * The state readers and new subscriptions see (undefined: none). In sync durability a change is
   * acknowledged only once Postgres has it, so one still waiting for Postgres (answered
   * UNAVAILABLE, or being committed right now) is not shown: were it shown, a Redis that lost it
   * would give its revision to other content at the next write. Async durability shows what the
   * cache acknowledged.
   */
  const readable = async (key: DocumentKey, entry: CachedEntry): Promise<DocumentState | undefined> => {
    const shown = shownOf(entry);
    if (shown !== 'database') return shown;
    // Not kept beside the change (e.g. an entry loaded dirty into a new epoch): ask Postgres.
    const row = await loadRow(key);
    return row && stateOf(row);
  };

  /** What `readable` shows of a current entry, or 'database' when only Postgres's row can say. */
  const shownOf = (entry: CachedEntry): DocumentState | 'database' => {
    if (acknowledgedFirst || entry.flushed >= entry.state.revision) return entry.state;
    if (entry.saved?.revision === entry.flushed) return entry.saved;
    return 'database';
  };

  /**
   * What a listing shows of a document, from its live row (undefined when Postgres has it deleted
   * or not at all) and its entry as read by `peek`, without putting anything in the cache. Only
   * when the cache has to decide — a stale entry ahead of the row, or a document to move above its
   * ceiling after a lost cache (`reconcile`) — is it read as `get` reads it: rare, and once per
   * document.
   */
  const listed = async (key: DocumentKey, row: DocumentRow | undefined, read: ReadResult, epoch: string | undefined): Promise<DocumentState | undefined> => {
    if (read.status === 'hit') {
      const shown = shownOf(read.entry);
      return shown === 'database' ? row && stateOf(row) : shown;
    }
    if (row) {
      const stale = read.status === 'stale' ? read.entry : undefined;
      if (reconcile(row, stale, { epoch: epoch ?? '', generation: '' }).state.revision === row.revision) return stateOf(row);
    }
    const { entry } = await current(key, 'read');
    return readable(key, entry);
  };

  /** The document as a reader or a new subscription sees it. */
  const snapshot = (key: DocumentKey): Promise<DocumentSnapshot> =>
    orFromDatabase(
      async () => {
        const { entry } = await current(key, 'read');
        const state = await readable(key, entry);
        return { revision: state?.revision ?? 0, document: state && !state.deleted ? documentAt(key, state) : undefined };
      },
      () => snapshotOfRow(db, key),
    );

  /**
   * A read the cache cannot serve (Redis unreachable, timing out) is answered by `fromDatabase` in
   * sync durability: Postgres has every acknowledged change there, and readers are shown only what
   * it has (see `readable`), so its row is exactly what the cache would have shown. In async
   * durability the cache may hold acknowledged changes Postgres lacks: its row could show an older
   * revision than a reader already saw, so the read stays UNAVAILABLE. Writes always need the
   * cache (its lock and revision check) and fail while it is away.
   */
  const orFromDatabase = async <T>(read: () => Promise<T>, fromDatabase: () => Promise<T>): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      if (acknowledgedFirst || !isDocumentCacheUnavailable(error)) throw error;
      logger.debug({ err: error }, 'document cache unavailable; read from the database');
      return fromDatabase();
    }
  };

  /**
   * Runs `work` in the document's turn among this instance's writers, or answers contention()
   * once `deadline` (performance.now() time) passes first. The place in the queue is then given
   * up — it runs nothing when reached — and so is the request it held: writers held up by a slow
   * one wait as long as for the Redis lock, not as long as the whole queue takes.
   */
  const inTurn = <T>(key: DocumentKey, deadline: number, work: () => Promise<T>): Promise<T> => {
    let queued: (() => Promise<T>) | undefined = work;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Started already: the lock's and the database's own limits apply.
        if (queued === undefined) return;
        queued = undefined;
        reject(contention());
      }, deadline - performance.now());
      writeTurns
        .run([documentEntity(key)], async () => {
          const started = queued;
          queued = undefined;
          clearTimeout(timer);
          if (started) resolve(await started());
        })
        .catch(reject);
    });
  };

  const write = (key: DocumentKey, command: WriteCommand): Promise<SyncDocument> => {
    // One writer per document in this instance at a time, then across instances: LOCK_WAIT_MS for both turns.
    const deadline = performance.now() + LOCK_WAIT_MS;
    return inTurn(key, deadline, () =>
      withDocumentLock(cache, cache.entryKey(key), deadline, logger, async () => {
        const { change, entryKey, epoch, event, earlier, late } = await decideAndWrite(key, command);
        if (acknowledgedFirst) {
          flusher.schedule(entryKey);
          await events.publish(key, event, { earlier, ifMarked: late });
        } else {
          await commits.commitAndPublish(key, entryKey, epoch, change, event, late);
        }
        return documentOf(key, change);
      }),
    );
  };

  /**
   * Reads the document, decides the change and writes it, with its event marked unpublished, if the
   * revision is still the one read. `earlier`: whether an earlier event of the document is still marked (async).
   */
  const decideAndWrite = async (key: DocumentKey, command: WriteCommand): Promise<Written> => {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt += 1) {
      const { entryKey, entry } = await current(key, 'write');
      if (!acknowledgedFirst && entry.flushed < entry.state.revision) {
        // sync: a change answered UNAVAILABLE earlier goes to Postgres before the next one is made
        // (or, refused by Postgres for good, is taken back).
        await commits.flushPending(key, entryKey, entry);
        continue;
      }
      const change: DocumentChange = decideWrite(key, entry.state, command, maxBytes, new Date());
      const event = documentEventOf(key, change);
      let result: WriteResult | 'confirmed';
      try {
        result = await cache.write(entryKey, entry.epoch, entry.state.revision, change.after, acknowledgedFirst, encodeEvent(event));
      } catch (error) {
        if (!isWriteOutcomeUnknown(error)) throw error;
        // No reply: it may have run. Answered as what it did (`lost-writes.ts`), or this throws.
        await confirmLostWrite(cache, { entryKey, epoch: entry.epoch, baseRevision: entry.state.revision, token: error.token, cause: error }, acknowledgedFirst, logger, options.lostWriteWaitMs);
        result = 'confirmed';
      }
      if (result === 'ok' || result === 'ok-behind' || result === 'confirmed') {
        return { change, entryKey, epoch: entry.epoch, event, earlier: result !== 'ok', late: result === 'confirmed' };
      }
      if (result === 'ceiling') await makeRoom(key, entryKey, entry.epoch, change.after.revision);
      // 'miss', 'stale', 'race': the entry changed under us (expiry, new epoch, a writer without the lock); read again. ('void' cannot be this write's.)
    }
    throw contention();
  };

  /**
   * Async durability, a change past the entry's ceiling: Postgres grants UNFLUSHED_REVISIONS_LIMIT
   * past the revision it has. When that does not cover the change either — Postgres is that far
   * behind — the document's changes are flushed first; the change waits for Postgres, or is
   * answered UNAVAILABLE when Postgres does not take them.
   */
  const makeRoom = async (key: DocumentKey, entryKey: string, epoch: string, revision: number): Promise<void> => {
    const lease = await cache.lease();
    // A new epoch: the entry is read again (and reconciled).
    if (lease.epoch !== epoch) return;
    if ((await extendCeiling(db, cache, key, lease, UNFLUSHED_REVISIONS_LIMIT)) >= revision) return;
    await flusher.flush(entryKey).catch((error: unknown) => {
      throw new TributaryError(
        ErrorCode.UNAVAILABLE,
        `The database has not taken this document's last ${UNFLUSHED_REVISIONS_LIMIT} changes yet; retry shortly`,
        { cause: error },
      );
    });
  };

  /** Documents of a service: Postgres's live rows, shown as the cache has them (see `listed`). */
  const listThroughCache: DocumentService['list'] = async (scope, service, { first, after, withData = true }) => {
    await epochChecked;
    // Postgres lists the live documents, so deleted ones cost nothing. The cache may hold newer
    // states of them: in sync durability only changes Postgres has (see `readable`); in async
    // durability also changes not flushed yet, among them re-creations of documents Postgres has
    // deleted — those are in the dirty set (dirty entries never expire). Deletions the cache
    // acknowledged first are skipped below. Ids are ASCII: string order is byte order.
    const unflushed = acknowledgedFirst ? (await cache.dirtyIds(scope, service)).sort() : [];
    const documents: SyncDocument[] = [];
    let cursor = after ?? '';
    for (;;) {
      const rows = await listLiveDocuments(db, scope, service, cursor, first + 1, withData);
      // Ids up to `end` are all known now (every id after the cursor when the rows stop short).
      const end = rows.length > first ? rows[rows.length - 1]!.id : undefined;
      const byId = new Map(rows.map((row) => [row.id, row]));
      const more = unflushed.filter((id) => id > cursor && (end === undefined || id <= end) && !byId.has(id));
      const ids = [...byId.keys(), ...more].sort();
      const { epoch, reads } = await cache.peek(ids.map((id) => cache.entryKey({ scope, service, id })), withData);
      for (const [index, id] of ids.entries()) {
        const key = { scope, service, id };
        const state = await listed(key, byId.get(id), reads[index]!, epoch);
        if (!state || state.deleted) continue;
        if (documents.length === first) return { documents, hasNextPage: true };
        documents.push(documentAt(key, state));
      }
      if (end === undefined) return { documents, hasNextPage: false };
      cursor = end;
    }
  };

  return {
    get: async (key) => (await snapshot(key)).document,

    snapshot,

    list: (scope, service, page) => orFromDatabase(() => listThroughCache(scope, service, page), () => listDocuments(db, scope, service, page)),

    create: (key, data) => write(key, { kind: 'create', data }),
    replace: (key, data, expectedRevision) => write(key, { kind: 'replace', data, expectedRevision }),
    merge: (key, patch, expectedRevision) => write(key, { kind: 'merge', patch, expectedRevision }),
    delete: (key, expectedRevision) => write(key, { kind: 'delete', expectedRevision }),

    close() {
      closed ??= (async () => {
        options.redis.off('ready', checkEpoch);
        // Together: a sweep waiting for a document's turn behind a change still waiting to commit
        // ends only once `commits.close()` has aborted that wait.
        await Promise.all([republisher.close(), commits.close()]);
        await flusher.close();
        // Everything acknowledged is in Postgres now (unless it is down): give the ceilings back.
        await releaseLeases(db, cache, logger);
      })();
      return closed;
    },
  };
}

interface Written {
  readonly change: DocumentChange;
  readonly entryKey: string;
  readonly epoch: string;
  readonly event: DocumentEvent;
  readonly earlier: boolean;
  /** Found written after its reply was lost: its event may have gone out already (published only if still marked). */
  readonly late: boolean;
}

function documentAt(key: DocumentKey, state: DocumentState): SyncDocument {
  return { service: key.service, id: key.id, revision: state.revision, data: state.data, createdAt: state.createdAt, updatedAt: state.updatedAt };
}
