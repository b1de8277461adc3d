import { ErrorCode, TributaryError } from '../../errors.ts';
import type { JsonObject } from '../events/json.ts';
import type { Scope } from '../scope.ts';

/**
 * The sync service (seed 000, "Path 2: Sync Service"): revisioned JSON documents with optimistic
 * concurrency. Every successful write bumps the revision by one and publishes
 * `sync.{service}.created|updated|deleted` with `{ service, documentId, revision, data, diff }`
 * (diff: RFC 6902, for updates and deletes), in revision order per document from one instance
 * (across instances, see `cached-documents.ts`).
 *
 * Two implementations keep the same contract:
 * - `postgres-documents.ts`: the platform database alone (Postgres or the embedded one);
 * - `cached-documents.ts`: a Redis hot cache in front of Postgres (the seed's HybridDocumentService).
 * A deleted document keeps a tombstone in both, so its revisions never go backwards when it is
 * created again.
 */
export type { JsonObject } from '../events/json.ts';

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

/** What `DocumentService.list` is asked for. */
export interface ListOptions {
  /** At most this many documents. */
  readonly first: number;
  /** The id the documents come after; undefined: from the first. */
  readonly after: string | undefined;
  /**
   * False: the documents' data is not read, from the database or the cache, and is `{}` — for a
   * page that does not select it (ids and revisions). @default true
   */
  readonly withData?: boolean;
}

/** A document as a new `document` subscription starts from. */
export interface DocumentSnapshot {
  /**
   * The document's revision: when it is deleted, its deletion's (a re-creation comes next, one
   * above it); 0 when it never existed.
   */
  readonly revision: number;
  /** The document; undefined when it is deleted or never existed. */
  readonly document: SyncDocument | undefined;
}

export interface DocumentService {
  get(key: DocumentKey): Promise<SyncDocument | undefined>;
  /** What `get` reads, with the revision of a deleted document. */
  snapshot(key: DocumentKey): Promise<DocumentSnapshot>;
  /** Documents of a service ordered by id, after the id `after` (a page of `documents` reads them through `listPage`). */
  list(scope: Scope, service: string, options: ListOptions): Promise<DocumentPage>;
  /** @throws CONFLICT when the id exists. */
  create(key: DocumentKey, data: JsonObject): Promise<SyncDocument>;
  replace(key: DocumentKey, data: JsonObject, expectedRevision: number | undefined): Promise<SyncDocument>;
  /** JSON Merge Patch (RFC 7386): `null` removes a key. */
  merge(key: DocumentKey, patch: JsonObject, expectedRevision: number | undefined): Promise<SyncDocument>;
  /** Returns the document as it was, with the revision of its deletion. */
  delete(key: DocumentKey, expectedRevision: number | undefined): Promise<SyncDocument>;
  /** Stops background work (flushing) after finishing what is due. Idempotent. */
  close(): Promise<void>;
}

/** Largest document, in bytes of JSON, unless configured otherwise. */
export const DEFAULT_MAX_DOCUMENT_BYTES = 256 * 1024;

/** Largest page of `documents`, in bytes of its documents' data as JSON. */
export const MAX_PAGE_DATA_BYTES = 4 * 1024 * 1024;

/**
 * A page of `documents`: at most `first` documents and, when their data is read, only as many as
 * hold `maxBytes` of it (JSON) — the page ends before the document that would take it over, with
 * `hasNextPage` as a page ended by `first`; a single larger document still makes a page of one.
 * 500 documents of 256 KiB made one answer of 125 MB, built whole and held for as long as a client
 * that does not read kept its connection. The documents are read in chunks of as many as could
 * hold `maxBytes` at the largest size a document may have (16 of 256 KiB in 4 MiB): a page reads
 * at most about twice what it answers, not `first` documents of the largest size.
 */
export async function listPage(
  documents: Pick<DocumentService, 'list'>,
  scope: Scope,
  service: string,
  options: ListOptions,
  maxBytes = MAX_PAGE_DATA_BYTES,
): Promise<DocumentPage> {
  const { first, withData = true } = options;
  if (!withData) return documents.list(scope, service, options);
  const chunk = Math.max(1, Math.floor(maxBytes / DEFAULT_MAX_DOCUMENT_BYTES));
  const page: SyncDocument[] = [];
  let bytes = 0;
  let after = options.after;
  for (;;) {
    const read = await documents.list(scope, service, { first: Math.min(chunk, first - page.length), after, withData });
    for (const document of read.documents) {
      const size = Buffer.byteLength(JSON.stringify(document.data));
      if (page.length > 0 && bytes + size > maxBytes) return { documents: page, hasNextPage: true };
      page.push(document);
      bytes += size;
    }
    const last = read.documents.at(-1);
    if (!read.hasNextPage || last === undefined || page.length === first) return { documents: page, hasNextPage: read.hasNextPage };
    after = last.id;
  }
}

/** The stream of one document's changes, in revision order (what `document` subscriptions read). */
export function documentTopic(service: string, id: string): string {
  return `sync.${service}.doc.${id}`;
}

/** The entity a document's events are ordered by. */
export function documentEntity(key: DocumentKey): string {
  return `sync/${key.service}/${key.id}`;
}

/**
 * @param field the argument the client sent: `data`, or `patch` when `data` is a merge's result.
 * @throws BAD_USER_INPUT naming `field` when the document is over `maxBytes` of JSON.
 */
export function assertDocumentSize(data: JsonObject, maxBytes: number, field: 'data' | 'patch' = 'data'): void {
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size > maxBytes) {
    const subject = field === 'patch' ? 'the merged document' : 'document';
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `${subject} is ${size} bytes of JSON; the limit is ${maxBytes}`, {
      details: { field },
    });
  }
}

export function notFound(key: DocumentKey): TributaryError {
  return new TributaryError(ErrorCode.NOT_FOUND, `No document "${key.id}" in service "${key.service}"`);
}

export function conflict(currentRevision: number | undefined, message = 'The document changed since that revision'): TributaryError {
  return new TributaryError(ErrorCode.CONFLICT, message, {
    ...(currentRevision !== undefined && { details: { currentRevision } }),
  });
}

export function alreadyExists(currentRevision: number | undefined): TributaryError {
  return conflict(currentRevision, 'A document with this id already exists');
}

/**
 * UNAVAILABLE for a change that was saved as `revision` but could not be finished — its event not
 * published, or (sync durability) not yet in the database: `details.saved` tells it from an
 * UNAVAILABLE that saved nothing (retry that one; not this one: it would be a second change).
 */
export function savedButUnavailable(revision: number, message: string, cause?: unknown): TributaryError {
  return new TributaryError(ErrorCode.UNAVAILABLE, message, { ...(cause !== undefined && { cause }), details: { saved: true, revision } });
}

/** The revision a `savedButUnavailable` error names; undefined for any other error (nothing known saved). */
export function savedRevisionOf(error: unknown): number | undefined {
  if (!(error instanceof TributaryError) || error.code !== ErrorCode.UNAVAILABLE || error.details['saved'] !== true) return undefined;
  const revision = error.details['revision'];
  return typeof revision === 'number' ? revision : undefined;
}

/**
 * UNAVAILABLE for a change whose fate is not known: its write was sent to the cache, no answer came,
 * and the cache could not be asked in time whether it had run. `details.saved: null` tells it from
 * both others: the change may be saved (as the next revision) or not — a retry could make it twice.
 */
export function outcomeUnknown(message: string, cause?: unknown): TributaryError {
  return new TributaryError(ErrorCode.UNAVAILABLE, message, { ...(cause !== undefined && { cause }), details: { saved: null } });
}

/** Whether `error` is an `outcomeUnknown` error. */
export function isOutcomeUnknown(error: unknown): boolean {
  return error instanceof TributaryError && error.code === ErrorCode.UNAVAILABLE && error.details['saved'] === null;
}

/** A document's fields for a log line: its scope, service and id. Not `service`: the root logger binds that (`tributary`). */
export function documentLogFields(key: DocumentKey): Record<string, string | undefined> {
  return { app: key.scope.app, env: key.scope.env, tenant: key.scope.tenant, documentService: key.service, documentId: key.id };
}
