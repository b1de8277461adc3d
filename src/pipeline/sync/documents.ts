import { apply as applyMergePatch } from 'json-merge-patch';
import { createPatch, type Operation } from 'rfc6902';
import type { Database, Queryable } from '../../db/database.ts';
import { ErrorCode, SqlState, sqlStateOf, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { newEventId, type EventRouter } from '../router/event-router.ts';
import type { Scope } from '../scope.ts';
import { createSequencer, type Slot } from './sequencer.ts';

/**
 * The sync service (seed 000, "Path 2: Sync Service"): revisioned JSON documents with optimistic
 * concurrency. Every successful write bumps the revision by one and publishes
 * `sync.{service}.created|updated|deleted` with `{ service, documentId, revision, data, diff }`
 * (diff: RFC 6902, for updates and deletes), in revision order per document.
 *
 * This implementation keeps documents in the platform database (Postgres or the embedded one);
 * each write is one transaction under the row's lock. A deleted document keeps a tombstone, so
 * its revisions never go backwards when it is created again.
 */
export type JsonObject = Record<string, unknown>;

export interface DocumentKey {
  readonly scope: Scope;
  readonly service: string;
  readonly id: string;
}

export interface SyncDocument {
  readonly service: string;
  readonly id: string;
  readonly revision: number;
  readonly data: JsonObject;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface DocumentPage {
  readonly documents: readonly SyncDocument[];
  readonly hasNextPage: boolean;
}

export interface DocumentService {
  get(key: DocumentKey): Promise<SyncDocument | undefined>;
  /** Documents of a service ordered by id, after the id `after`. */
  list(scope: Scope, service: string, options: { first: number; after: string | undefined }): Promise<DocumentPage>;
  /** @throws CONFLICT when the id exists. A random id is chosen when `id` is undefined. */
  create(key: Omit<DocumentKey, 'id'> & { id: string }, data: JsonObject): Promise<SyncDocument>;
  replace(key: DocumentKey, data: JsonObject, expectedRevision: number | undefined): Promise<SyncDocument>;
  /** JSON Merge Patch (RFC 7386): `null` removes a key. */
  merge(key: DocumentKey, patch: JsonObject, expectedRevision: number | undefined): Promise<SyncDocument>;
  /** Returns the document as it was, with the revision of its deletion. */
  delete(key: DocumentKey, expectedRevision: number | undefined): Promise<SyncDocument>;
}

export interface DocumentServiceOptions {
  readonly db: Database;
  readonly router: EventRouter;
  readonly logger: Logger;
  /** Largest document, in bytes of JSON. @default 256 KiB */
  readonly maxDocumentBytes?: number;
}

/** A `sync_documents` row as selected (a type alias: the database interface wants an index signature). */
type Row = {
  id: string;
  revision: number;
  data: JsonObject;
  deleted: boolean;
  created_at: Date;
  updated_at: Date;
};

type WriteOperation = 'created' | 'updated' | 'deleted';

export function createDocumentService(options: DocumentServiceOptions): DocumentService {
  const { db, router } = options;
  const maxBytes = options.maxDocumentBytes ?? 256 * 1024;
  const sequencer = createSequencer();
  const logger = options.logger.child({ component: 'sync' });

  const checkSize = (data: JsonObject) => {
    const size = Buffer.byteLength(JSON.stringify(data));
    if (size > maxBytes) {
      throw new TributaryError(ErrorCode.BAD_USER_INPUT, `document is ${size} bytes of JSON; the limit is ${maxBytes}`, {
        details: { field: 'data' },
      });
    }
  };

  /**
   * One write: the transaction decides under the row lock, the publishing slot is reserved under
   * it too (so events leave in revision order), and the event is routed after the commit.
   */
  const write = async (
    key: DocumentKey,
    decide: (tx: Queryable, current: Row | undefined) => Promise<{ row: Row; before: Row | undefined; operation: WriteOperation }>,
  ): Promise<{ row: Row; before: Row | undefined; operation: WriteOperation }> => {
    // Declared with its full type: assigned inside the transaction callback.
    let slot = undefined as Slot | undefined;
    let outcome: Awaited<ReturnType<typeof decide>>;
    try {
      outcome = await db.transaction(async (tx) => {
        const { rows } = await tx.query<Row>(
          `SELECT id, revision, data, deleted, created_at, updated_at FROM sync_documents
            WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5 FOR UPDATE`,
          keyParams(key),
        );
        const result = await decide(tx, rows[0]);
        slot = sequencer.reserve(entityOf(key));
        return result;
      });
    } catch (error) {
      slot?.cancel();
      if (sqlStateOf(error) === SqlState.UNIQUE_VIOLATION) throw conflict(undefined, 'A document with this id already exists');
      throw error;
    }
    const { row, before, operation } = outcome;
    const payload = {
      service: key.service,
      documentId: key.id,
      revision: row.revision,
      data: operation === 'deleted' ? null : row.data,
      ...(before && !before.deleted && { diff: diffOf(before.data, operation === 'deleted' ? null : row.data) }),
    };
    const event = {
      source: 'sync',
      type: `sync.${operation}`,
      scope: key.scope,
      entity: entityOf(key),
      revision: row.revision,
      payload,
    } as const;
    // The service topic for everyone, the document's own stream for `document` subscriptions;
    // one id, so a client that sees both can tell they are the same change.
    const id = newEventId();
    await slot!.run(async () => {
      await router.route({ ...event, id, topic: `sync.${key.service}.${operation}` });
      await router.route({ ...event, id, topic: documentTopic(key.service, key.id) });
    }).catch((error: unknown) => {
      // The write is committed; its event could not be placed (the log is unavailable).
      logger.error({ err: error, service: key.service, documentId: key.id, revision: row.revision }, 'document event not published');
      throw new TributaryError(
        ErrorCode.UNAVAILABLE,
        `The change was saved as revision ${row.revision}, but its event could not be published; subscribers should refetch`,
        { cause: error, details: { revision: row.revision } },
      );
    });
    return outcome;
  };

  const update = (key: DocumentKey, expectedRevision: number | undefined, next: (current: JsonObject) => JsonObject) =>
    write(key, async (tx, current) => {
      if (!current || current.deleted) throw notFound(key);
      if (expectedRevision !== undefined && expectedRevision !== current.revision) throw conflict(current.revision);
      const data = next(current.data);
      checkSize(data);
      const { rows } = await tx.query<Row>(
        `UPDATE sync_documents SET revision = revision + 1, data = $6, updated_at = now()
          WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5
          RETURNING id, revision, data, deleted, created_at, updated_at`,
        [...keyParams(key), JSON.stringify(data)],
      );
      return { row: rows[0]!, before: current, operation: 'updated' };
    });

  return {
    async get(key) {
      const { rows } = await db.query<Row>(
        `SELECT id, revision, data, deleted, created_at, updated_at FROM sync_documents
          WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5 AND NOT deleted`,
        keyParams(key),
      );
      return rows[0] && toDocument(key.service, rows[0]);
    },

    async list(scope, service, { first, after }) {
      const { rows } = await db.query<Row>(
        `SELECT id, revision, data, deleted, created_at, updated_at FROM sync_documents
          WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND NOT deleted AND id COLLATE "C" > $5
          ORDER BY id COLLATE "C" LIMIT $6`,
        [scope.app, scope.env, scope.tenant ?? '', service, after ?? '', first + 1],
      );
      return { documents: rows.slice(0, first).map((row) => toDocument(service, row)), hasNextPage: rows.length > first };
    },

    async create(key, data) {
      checkSize(data);
      const { row } = await write(key, async (tx, current) => {
        if (current && !current.deleted) throw conflict(current.revision, 'A document with this id already exists');
        const { rows } = current
          ? await tx.query<Row>(
              `UPDATE sync_documents SET revision = revision + 1, data = $6, deleted = false, created_at = now(), updated_at = now()
                WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5
                RETURNING id, revision, data, deleted, created_at, updated_at`,
              [...keyParams(key), JSON.stringify(data)],
            )
          : await tx.query<Row>(
              `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data) VALUES ($1, $2, $3, $4, $5, 1, $6)
                RETURNING id, revision, data, deleted, created_at, updated_at`,
              [...keyParams(key), JSON.stringify(data)],
            );
        return { row: rows[0]!, before: undefined, operation: 'created' };
      });
      return toDocument(key.service, row);
    },

    async replace(key, data, expectedRevision) {
      checkSize(data);
      return toDocument(key.service, (await update(key, expectedRevision, () => data)).row);
    },

    async merge(key, patch, expectedRevision) {
      const { row } = await update(key, expectedRevision, (current) => {
        const merged: unknown = applyMergePatch(structuredClone(current), patch);
        return merged as JsonObject;
      });
      return toDocument(key.service, row);
    },

    async delete(key, expectedRevision) {
      const { row, before } = await write(key, async (tx, current) => {
        if (!current || current.deleted) throw notFound(key);
        if (expectedRevision !== undefined && expectedRevision !== current.revision) throw conflict(current.revision);
        const { rows } = await tx.query<Row>(
          `UPDATE sync_documents SET revision = revision + 1, deleted = true, updated_at = now()
            WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5
            RETURNING id, revision, data, deleted, created_at, updated_at`,
          keyParams(key),
        );
        return { row: rows[0]!, before: current, operation: 'deleted' };
      });
      return toDocument(key.service, { ...row, data: before?.data ?? row.data });
    },
  };
}

/** The stream of one document's changes, in revision order (what `document` subscriptions read). */
export function documentTopic(service: string, id: string): string {
  return `sync.${service}.doc.${id}`;
}

function keyParams(key: DocumentKey): unknown[] {
  return [key.scope.app, key.scope.env, key.scope.tenant ?? '', key.service, key.id];
}

function entityOf(key: DocumentKey): string {
  return `sync/${key.service}/${key.id}`;
}

function toDocument(service: string, row: Row): SyncDocument {
  return { service, id: row.id, revision: row.revision, data: row.data, createdAt: row.created_at, updatedAt: row.updated_at };
}

function diffOf(before: JsonObject, after: JsonObject | null): Operation[] {
  return createPatch(before, after);
}

function notFound(key: DocumentKey): TributaryError {
  return new TributaryError(ErrorCode.NOT_FOUND, `No document "${key.id}" in service "${key.service}"`);
}

function conflict(currentRevision: number | undefined, message = 'The document changed since that revision'): TributaryError {
  return new TributaryError(ErrorCode.CONFLICT, message, {
    ...(currentRevision !== undefined && { details: { currentRevision } }),
  });
}
