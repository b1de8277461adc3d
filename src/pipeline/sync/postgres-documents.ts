import type { Database } from '../../db/database.ts';
import { SqlState, sqlStateOf } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createKeyedSerial, type Slot } from '../coordination/keyed-serial.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { Scope } from '../scope.ts';
import { createDocumentEventPublisher, documentEventOf } from './document-events.ts';
import { listLiveDocuments, lockDocument, selectDocument, stateOf, writeDocument, type DocumentRow } from './document-store.ts';
import { decideWrite, documentOf, type WriteCommand } from './document-writes.ts';
import {
  alreadyExists,
  DEFAULT_MAX_DOCUMENT_BYTES,
  documentEntity,
  type DocumentKey,
  type DocumentService,
  type DocumentSnapshot,
  type ListOptions,
  type SyncDocument,
} from './documents.ts';
import { createRepublisher } from './republisher.ts';
import { createPostgresMarks, DEFAULT_REPUBLISH_GRACE_MS, markUnpublished } from './unpublished-events.ts';

export interface PostgresDocumentServiceOptions {
  readonly db: Database;
  readonly router: EventRouter;
  readonly logger: Logger;
  /** Largest document, in bytes of JSON. @default DEFAULT_MAX_DOCUMENT_BYTES */
  readonly maxDocumentBytes?: number;
  /** How long a change's event may stay unpublished before the sweep publishes it again. @default DEFAULT_REPUBLISH_GRACE_MS */
  readonly republishGraceMs?: number;
  /** How often that sweep runs. @default 5000 */
  readonly republishIntervalMs?: number;
}

/**
 * Documents in the platform database alone (no Redis): each write is one transaction under the
 * row's lock, and the publishing slot is reserved under it too, so a document's events leave in
 * revision order although they are routed after the commit. The transaction also marks the
 * change's event unpublished (`unpublished-events.ts`): an event that does not go out (the process
 * dies first, the log refuses it) is published by the next change of the document before its own,
 * or by the sweep after the grace period.
 */
export function createPostgresDocumentService(options: PostgresDocumentServiceOptions): DocumentService {
  const { db } = options;
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const publishTurns = createKeyedSerial();
  const graceMs = options.republishGraceMs ?? DEFAULT_REPUBLISH_GRACE_MS;
  const marks = createPostgresMarks(db, graceMs);
  const events = createDocumentEventPublisher(options.router, marks, options.logger);
  const republisher = createRepublisher({
    marks,
    publisher: events,
    turns: publishTurns,
    logger: options.logger,
    ...(options.republishIntervalMs !== undefined && { intervalMs: options.republishIntervalMs }),
  });

  const write = async (key: DocumentKey, command: WriteCommand): Promise<SyncDocument> => {
    // Declared with its full type: assigned inside the transaction callback.
    let slot = undefined as Slot | undefined;
    let saved;
    try {
      saved = await db.transaction(async (tx) => {
        const row = await lockDocument(tx, key);
        const decided = decideWrite(key, row && stateOf(row), command, maxBytes, new Date());
        // Nothing written: there was no row to lock, and a concurrent creation inserted it first
        // (committed: this statement waited for it, and the next one sees it).
        if ((await writeDocument(tx, key, decided.after, undefined)) === undefined) throw alreadyExists((await selectDocument(tx, key))?.revision);
        const event = documentEventOf(key, decided);
        const earlier = await markUnpublished(tx, key, event, graceMs);
        slot = publishTurns.reserve([documentEntity(key)]);
        return { change: decided, event, earlier };
      });
    } catch (error) {
      slot?.cancel();
      // Two creations of a new id raced; the other one's insert committed first.
      if (sqlStateOf(error) === SqlState.UNIQUE_VIOLATION) throw alreadyExists(await currentRevision(key));
      throw error;
    }
    await events.publish(key, saved.event, { earlier: saved.earlier, ...(slot && { slot }) });
    return documentOf(key, saved.change);
  };

  /** The revision a refused creation reports, when it can be read. */
  const currentRevision = async (key: DocumentKey): Promise<number | undefined> => (await selectDocument(db, key).catch(() => undefined))?.revision;

  return {
    get: async (key) => (await snapshotOfRow(db, key)).document,
    snapshot: (key) => snapshotOfRow(db, key),

    list: (scope, service, page) => listDocuments(db, scope, service, page),

    create: (key, data) => write(key, { kind: 'create', data }),
    replace: (key, data, expectedRevision) => write(key, { kind: 'replace', data, expectedRevision }),
    merge: (key, patch, expectedRevision) => write(key, { kind: 'merge', patch, expectedRevision }),
    delete: (key, expectedRevision) => write(key, { kind: 'delete', expectedRevision }),
    close: () => republisher.close(),
  };
}

/**
 * The document as the database has it. Also what the cached service reads in sync durability
 * while Redis is unavailable: the database then holds every acknowledged change.
 */
export async function snapshotOfRow(db: Database, key: DocumentKey): Promise<DocumentSnapshot> {
  const row = await selectDocument(db, key);
  return { revision: row?.revision ?? 0, document: row && !row.deleted ? toDocument(key.service, row) : undefined };
}

/** Live documents of a service in the database, by id (byte order), after `after` (also the cached service's fallback, as above). */
export async function listDocuments(
  db: Database,
  scope: Scope,
  service: string,
  { first, after, withData = true }: ListOptions,
): Promise<{ documents: SyncDocument[]; hasNextPage: boolean }> {
  const rows = await listLiveDocuments(db, scope, service, after ?? '', first + 1, withData);
  return { documents: rows.slice(0, first).map((row) => toDocument(service, row)), hasNextPage: rows.length > first };
}

function toDocument(service: string, row: DocumentRow): SyncDocument {
  return { service, id: row.id, revision: row.revision, data: row.data, createdAt: row.created_at, updatedAt: row.updated_at };
}
