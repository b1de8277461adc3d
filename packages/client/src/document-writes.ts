/**
 * Writing sync documents: `createDocument`, `replaceDocument`, `mergeDocument`, `deleteDocument`
 * (one request each, over the socket), `getDocument`, and `updateDocument(service, id, update)`:
 * read, apply, write at the revision read — after a CONFLICT (another writer got in between) read
 * again and apply again, a bounded number of times.
 *
 * A write with `expectedRevision` is refused (CONFLICT, `extensions.currentRevision`) unless the
 * document is still at that revision: no lost update. One with an `idempotencyKey` is made once
 * per key: sent again after its answer was lost (SessionEndedError: the socket went), it writes
 * nothing more and answers as the first try did. `updateDocument` gives each write a key of its
 * own and sends it again, with that key, while that is safe (the socket went, UNAVAILABLE,
 * RATE_LIMITED, the socket's token expired, the first try still running) — so an update is
 * applied once however its answers go. Every write ends as a publish does when the connection
 * turns `unauthorized` or another user's token comes (it must not be made under the next login).
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { backoffDelay, pause } from './backoff.ts';
import { retryAfterOf, TributaryRequestError } from './errors.ts';
import {
  TributaryCreateDocumentDocument,
  TributaryDeleteDocumentDocument,
  TributaryGetDocumentDocument,
  TributaryMergeDocumentDocument,
  TributaryReplaceDocumentDocument,
  type TributaryStoredDocumentFragment,
} from './generated.ts';
import { answerOf, isRetryablePublishError, PUBLISH_RETRY, randomKey } from './publish.ts';
import type { Variables } from './session.ts';

/** A document's data: a JSON object. */
export type DocumentData = Readonly<Record<string, unknown>>;

/** A document as the server stores it (`T`: your promise about the shape of its data, not checked). */
export interface StoredDocument<T extends object = DocumentData> {
  readonly service: string;
  readonly id: string;
  /** Starts at 1; every change adds one: pass it as `expectedRevision`. What `deleteDocument` answers: the revision of the deletion. */
  readonly revision: number;
  readonly data: T;
  /** ISO 8601. */
  readonly createdAt: string;
  /** ISO 8601. */
  readonly updatedAt: string;
}

export interface CreateDocumentOptions {
  /** Up to 128 letters, digits and _ . : -. @default an id the server generates */
  readonly id?: string;
  /** Makes a retry safe (see `WriteDocumentOptions.idempotencyKey`). */
  readonly idempotencyKey?: string;
}

export interface WriteDocumentOptions {
  /** Refused (CONFLICT, with `extensions.currentRevision`) unless the document is at this revision. */
  readonly expectedRevision?: number;
  /**
   * 1–255 printable ASCII characters without spaces (a UUID): the same write sent again with it —
   * after a SessionEndedError, when you cannot know whether it was made — writes nothing more and
   * answers as the first try did. The same key with other arguments is CONFLICT. Kept by the
   * server for EVENT_PUBLISH_KEY_TTL_SECONDS (24 h by default).
   */
  readonly idempotencyKey?: string;
}

export interface UpdateDocumentOptions {
  /** Reads-and-writes in all: after this many CONFLICTs the last one is thrown. @default 5 */
  readonly attempts?: number;
}

/**
 * The document's next data from what was read (a copy: change it or return a new object); may be
 * async. Called again with the newer document after a CONFLICT: keep it free of side effects.
 */
export type DocumentUpdate<T extends object> = (data: T, current: StoredDocument<T>) => T | Promise<T>;

export interface DocumentWrites {
  /** The document, or null when there is none (or it was deleted). Needs `sync.{service}.read` (or the document's own). */
  getDocument<T extends object = DocumentData>(service: string, id: string): Promise<StoredDocument<T> | null>;
  /** Creates a document at revision 1; CONFLICT when the id exists. Needs `sync.{service}.write`. */
  createDocument<T extends object = DocumentData>(service: string, data: T, options?: CreateDocumentOptions): Promise<StoredDocument<T>>;
  /** Replaces the document's data. Needs `sync.{service}.write` (or the document's own). */
  replaceDocument<T extends object = DocumentData>(service: string, id: string, data: T, options?: WriteDocumentOptions): Promise<StoredDocument<T>>;
  /** Deep-merges a JSON Merge Patch (RFC 7396: `null` removes a key); answers the merged document (`T`: its shape). */
  mergeDocument<T extends object = DocumentData>(service: string, id: string, patch: DocumentData, options?: WriteDocumentOptions): Promise<StoredDocument<T>>;
  /** Deletes the document; answers it as it was, with the revision of its deletion (its `data` `{}` when answered from an idempotency key). */
  deleteDocument(service: string, id: string, options?: WriteDocumentOptions): Promise<StoredDocument>;
  /**
   * Reads the document, applies `update` to its data and replaces it at the revision read; after
   * a CONFLICT, again with the document as it is then (at most `attempts` times). Each write
   * carries an idempotency key of its own and is sent again with it while that is safe, so
   * `update`'s result is written once. @throws TributaryRequestError NOT_FOUND when there is no
   * document; the last CONFLICT after `attempts`; any other refusal (FORBIDDEN…) at once.
   */
  updateDocument<T extends object = DocumentData>(service: string, id: string, update: DocumentUpdate<T>, options?: UpdateDocumentOptions): Promise<StoredDocument<T>>;
}

/** A request within a write's life (see `client.ts`): ended when the connection turns `unauthorized` or another user's token comes. */
export type SendRequest = <TData, TVariables extends Variables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables) => Promise<TData>;

/** Runs `run` with a `send` that ends (and an `ended` signal that aborts) as the client's publishes do. */
export type WithSend = <R>(run: (send: SendRequest, ended: AbortSignal) => Promise<R>) => Promise<R>;

/** `updateDocument`'s reads-and-writes by default. */
export const UPDATE_DOCUMENT_ATTEMPTS = 5;

/** Whether `error` says the document moved since the revision sent (not a keyed try still running: `inFlight`). */
export function isRevisionConflict(error: unknown): boolean {
  return error instanceof TributaryRequestError && error.errors.some((each) => each.extensions?.['code'] === 'CONFLICT' && each.extensions['inFlight'] !== true);
}

export function documentWrites(withSend: WithSend): DocumentWrites {
  const stored = <T extends object>(document: TributaryStoredDocumentFragment): StoredDocument<T> => document as StoredDocument<T>;
  /** A write's answer (`answerOf`: null is refused, never returned). */
  const written = <T extends object>(document: TributaryStoredDocumentFragment | null, field: string): StoredDocument<T> => stored<T>(answerOf(document, field));

  return {
    getDocument: <T extends object>(service: string, id: string) =>
      withSend(async (send) => {
        const { document } = await send(TributaryGetDocumentDocument, { service, id });
        return document === null ? null : stored<T>(document);
      }),
    createDocument: (service, data, options = {}) =>
      withSend(async (send) => written((await send(TributaryCreateDocumentDocument, { service, data, id: options.id ?? null, idempotencyKey: options.idempotencyKey ?? null })).createDocument, 'createDocument')),
    replaceDocument: (service, id, data, options = {}) =>
      withSend(async (send) => written((await send(TributaryReplaceDocumentDocument, { service, id, data, ...writeOptions(options) })).replaceDocument, 'replaceDocument')),
    mergeDocument: (service, id, patch, options = {}) =>
      withSend(async (send) => written((await send(TributaryMergeDocumentDocument, { service, id, patch, ...writeOptions(options) })).mergeDocument, 'mergeDocument')),
    deleteDocument: (service, id, options = {}) =>
      withSend(async (send) => written((await send(TributaryDeleteDocumentDocument, { service, id, ...writeOptions(options) })).deleteDocument, 'deleteDocument')),
    updateDocument: <T extends object>(service: string, id: string, update: DocumentUpdate<T>, options: UpdateDocumentOptions = {}) =>
      withSend(async (send, ended) => {
        const attempts = Number.isFinite(options.attempts) ? Math.max(1, Math.floor(options.attempts!)) : UPDATE_DOCUMENT_ATTEMPTS;
        for (let attempt = 1; ; attempt += 1) {
          const { document } = await untilAnswered(() => send(TributaryGetDocumentDocument, { service, id }), ended);
          if (document === null) throw new TributaryRequestError([{ message: `There is no document "${id}" in service "${service}"`, extensions: { code: 'NOT_FOUND' } }]);
          const current = stored<T>(document);
          const data = await update(structuredClone(current.data), current);
          // One key per write: sent again with it, a write whose answer was lost is not made twice.
          const variables = { service, id, data, expectedRevision: current.revision, idempotencyKey: randomKey() };
          try {
            return written<T>((await untilAnswered(() => send(TributaryReplaceDocumentDocument, variables), ended)).replaceDocument, 'replaceDocument');
          } catch (error) {
            if (attempt >= attempts || !isRevisionConflict(error)) throw error;
          }
        }
      }),
  };
}

function writeOptions(options: WriteDocumentOptions): { expectedRevision: number | null; idempotencyKey: string | null } {
  return { expectedRevision: options.expectedRevision ?? null, idempotencyKey: options.idempotencyKey ?? null };
}

/**
 * `request()`, sent again while that is safe for a read or a keyed write (`isRetryablePublishError`:
 * the socket went before the answer, UNAVAILABLE, RATE_LIMITED, the socket's token expired, a try
 * with the key still running), with the publishes' pauses and tries; until `ended` aborts.
 */
async function untilAnswered<R>(request: () => Promise<R>, ended: AbortSignal): Promise<R> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await request();
    } catch (error) {
      // A change the server saved (UNAVAILABLE with `saved: true`), or could not tell whether it
      // saved (`saved: null`), is not made again under its key: every retry would be answered the same.
      if (ended.aborted || attempt >= PUBLISH_RETRY.attempts || !isRetryablePublishError(error) || savedOrMaybe(error)) throw error;
      await pause(Math.max(backoffDelay(attempt - 1, PUBLISH_RETRY.backoff), retryAfterOf(error) ?? 0), ended);
    }
  }
}

/**
 * The server saved the change but could not finish it (UNAVAILABLE, `extensions.saved: true`), or
 * cannot tell whether it saved it (`saved: null`: its cache took the write, the answer was lost).
 */
function savedOrMaybe(error: unknown): boolean {
  return error instanceof TributaryRequestError && error.errors.some((entry) => entry.extensions?.['saved'] === true || entry.extensions?.['saved'] === null);
}
