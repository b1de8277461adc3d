import {
  alreadyExists,
  assertDocumentSize,
  conflict,
  notFound,
  type DocumentKey,
  type JsonObject,
  type SyncDocument,
} from './documents.ts';
import { applyMergePatch } from './merge-patch.ts';

/**
 * What a write does to a document, decided the same way by every implementation: from the state
 * it read (under its lock or revision check) to the next state, or the error the client gets.
 */

/** What a tombstone (a deleted document) holds as data: nothing. Frozen: it is shared. */
const TOMBSTONE_DATA: JsonObject = Object.freeze({});

/** A document as stored, tombstones included (their `data` is TOMBSTONE_DATA, or older content for a row deleted before tombstones were emptied). */
export interface DocumentState {
  readonly revision: number;
  readonly data: JsonObject;
  readonly deleted: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type WriteCommand =
  | { readonly kind: 'create'; readonly data: JsonObject }
  | { readonly kind: 'replace'; readonly data: JsonObject; readonly expectedRevision: number | undefined }
  | { readonly kind: 'merge'; readonly patch: JsonObject; readonly expectedRevision: number | undefined }
  | { readonly kind: 'delete'; readonly expectedRevision: number | undefined };

export type WriteOperation = 'created' | 'updated' | 'deleted';

export interface DocumentChange {
  readonly operation: WriteOperation;
  /** The live document before the write; undefined for a creation. */
  readonly before: DocumentState | undefined;
  readonly after: DocumentState;
}

/** @throws CONFLICT, NOT_FOUND or BAD_USER_INPUT (size) — nothing is written then. */
export function decideWrite(
  key: DocumentKey,
  current: DocumentState | undefined,
  command: WriteCommand,
  maxBytes: number,
  now: Date,
): DocumentChange {
  const live = current && !current.deleted ? current : undefined;
  const revision = (current?.revision ?? 0) + 1;
  if (command.kind === 'create') {
    if (live) throw alreadyExists(live.revision);
    assertDocumentSize(command.data, maxBytes);
    return {
      operation: 'created',
      before: undefined,
      after: { revision, data: command.data, deleted: false, createdAt: now, updatedAt: now },
    };
  }
  if (!live) throw notFound(key);
  if (command.expectedRevision !== undefined && command.expectedRevision !== live.revision) throw conflict(live.revision);
  if (command.kind === 'delete') {
    // The tombstone keeps the revision (a re-creation continues from it) and the times, never the
    // content: a deleted document must not stay in Postgres or Redis (erasure requests). What it
    // was is in `before`, for the answer and the event's diff.
    return { operation: 'deleted', before: live, after: { ...live, revision, data: TOMBSTONE_DATA, deleted: true, updatedAt: now } };
  }
  const data: JsonObject = command.kind === 'replace' ? command.data : applyMergePatch(live.data, command.patch);
  assertDocumentSize(data, maxBytes, command.kind === 'replace' ? 'data' : 'patch');
  return { operation: 'updated', before: live, after: { ...live, revision, data, updatedAt: now } };
}

/** What a write answers: the new document, or for a deletion the document as it was (with the deletion's revision and time). */
export function documentOf(key: DocumentKey, change: DocumentChange): SyncDocument {
  const { after, before } = change;
  // The tombstone has no content left: the deleted document's is `before`'s.
  const data = change.operation === 'deleted' && before ? before.data : after.data;
  return { service: key.service, id: key.id, revision: after.revision, data, createdAt: after.createdAt, updatedAt: after.updatedAt };
}
