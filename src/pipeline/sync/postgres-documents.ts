import type { Database } from '../../db/database.ts';
import { SqlState, sqlStateOf } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { Scope } from '../scope.ts';
import { createDocumentEventPublisher } from './document-events.ts';
import { decideWrite, documentOf, type DocumentState, type WriteCommand } from './document-writes.ts';
import {
  alreadyExists,
  DEFAULT_MAX_DOCUMENT_BYTES,
  documentEntity,
  type DocumentKey,
  type DocumentService,
  type JsonObject,
  type SyncDocument,
} from './documents.ts';
import { createKeyedSerial, type Slot } from '../coordination/keyed-serial.ts';

export interface PostgresDocumentServiceOptions {
  readonly db: Database;
  readonly router: EventRouter;
  readonly logger: Logger;
  /** Largest document, in bytes of JSON. @default DEFAULT_MAX_DOCUMENT_BYTES */
  readonly maxDocumentBytes?: number;
}

/** A `sync_documents` row as selected (a type alias: the database interface wants an index signature). */
export type DocumentRow = {
  id: string;
  revision: number;
  data: JsonObject;
  deleted: boolean;
  created_at: Date;
  updated_at: Date;
};

const COLUMNS = 'id, revision, data, deleted, created_at, updated_at';

/**
 * Documents in the platform database alone (no Redis): each write is one transaction under the
 * row's lock, and the publishing slot is reserved under it too, so a document's events leave in
 * revision order although they are routed after the commit.
 */
export function createPostgresDocumentService(options: PostgresDocumentServiceOptions): DocumentService {
  const { db } = options;
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const publishTurns = createKeyedSerial();
  const events = createDocumentEventPublisher(options.router, options.logger);

  const write = async (key: DocumentKey, command: WriteCommand): Promise<SyncDocument> => {
    // Declared with its full type: assigned inside the transaction callback.
    let slot = undefined as Slot | undefined;
    let change;
    try {
      change = await db.transaction(async (tx) => {
        const { rows } = await tx.query<DocumentRow>(`SELECT ${COLUMNS} FROM sync_documents WHERE ${KEY_MATCH} FOR UPDATE`, keyParams(key));
        const decided = decideWrite(key, rows[0] && stateOf(rows[0]), command, maxBytes, new Date());
        const { after } = decided;
        await tx.query(
          `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data, deleted, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (app, env, tenant, service, id) DO UPDATE SET revision = excluded.revision, data = excluded.data,
             deleted = excluded.deleted, created_at = excluded.created_at, updated_at = excluded.updated_at`,
          [...keyParams(key), after.revision, JSON.stringify(after.data), after.deleted, after.createdAt, after.updatedAt],
        );
        slot = publishTurns.reserve([documentEntity(key)]);
        return decided;
      });
    } catch (error) {
      slot?.cancel();
      // Two creations of a new id raced; the other one's insert committed first.
      if (sqlStateOf(error) === SqlState.UNIQUE_VIOLATION) throw alreadyExists(undefined);
      throw error;
    }
    await events.publish(key, change, slot);
    return documentOf(key, change);
  };

  return {
    async get(key) {
      const { rows } = await db.query<DocumentRow>(`SELECT ${COLUMNS} FROM sync_documents WHERE ${KEY_MATCH} AND NOT deleted`, keyParams(key));
      return rows[0] && toDocument(key.service, rows[0]);
    },

    list: (scope, service, page) => listDocuments(db, scope, service, page),

    create: (key, data) => write(key, { kind: 'create', data }),
    replace: (key, data, expectedRevision) => write(key, { kind: 'replace', data, expectedRevision }),
    merge: (key, patch, expectedRevision) => write(key, { kind: 'merge', patch, expectedRevision }),
    delete: (key, expectedRevision) => write(key, { kind: 'delete', expectedRevision }),
    close: () => Promise.resolve(),
  };
}

/** Live documents of a service in the database, by id (byte order), after `after`. */
export async function listDocuments(
  db: Database,
  scope: Scope,
  service: string,
  { first, after }: { first: number; after: string | undefined },
): Promise<{ documents: SyncDocument[]; hasNextPage: boolean }> {
  const { rows } = await db.query<DocumentRow>(
    `SELECT ${COLUMNS} FROM sync_documents
      WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND NOT deleted AND id COLLATE "C" > $5
      ORDER BY id COLLATE "C" LIMIT $6`,
    [scope.app, scope.env, scope.tenant ?? '', service, after ?? '', first + 1],
  );
  return { documents: rows.slice(0, first).map((row) => toDocument(service, row)), hasNextPage: rows.length > first };
}

export const KEY_MATCH = 'app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5';

export function keyParams(key: DocumentKey): unknown[] {
  return [key.scope.app, key.scope.env, key.scope.tenant ?? '', key.service, key.id];
}

export function stateOf(row: DocumentRow): DocumentState {
  return { revision: row.revision, data: row.data, deleted: row.deleted, createdAt: row.created_at, updatedAt: row.updated_at };
}

function toDocument(service: string, row: DocumentRow): SyncDocument {
  return { service, id: row.id, revision: row.revision, data: row.data, createdAt: row.created_at, updatedAt: row.updated_at };
}
