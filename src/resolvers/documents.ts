import { randomBytes } from 'node:crypto';
import { canAccessTopic, type TopicAction } from '../auth/permissions.ts';
import type { Principal } from '../auth/principal.ts';
import { badUserInput, ErrorCode, TributaryError } from '../errors.ts';
import { MAX_NAME_LENGTH } from '../pipeline/names.ts';
import { dispatchTicket, type Admission, type DispatchTicket } from '../pipeline/dispatch/subscription-contract.ts';
import { documentSnapshot } from '../pipeline/events/document-change.ts';
import { scopeOf } from '../pipeline/scope.ts';
import { streamOf } from '../pipeline/stream.ts';
import { isValidKey, keyId, MAX_KEY_LENGTH } from '../pipeline/idempotency/publish-keys.ts';
import { documentTopic, listPage, type DocumentKey, type DocumentPage, type JsonObject, type SyncDocument } from '../pipeline/sync/documents.ts';
import { writeFingerprint, writeOnce, type KeyedWrite } from '../pipeline/sync/keyed-writes.ts';
import type { ResolverContext } from './context.ts';
import { assertStorableJson } from './json-input.ts';

/** Service names become topic segments (`sync.{service}.updated`): lower case, digits, _ and -. */
const SERVICE = /^[a-z][a-z0-9_-]{0,62}$/;
const DOCUMENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 500;

export interface DocumentArgs {
  readonly service: string;
  readonly id: string;
}

export interface WriteArgs extends DocumentArgs {
  readonly expectedRevision?: number | null;
  readonly idempotencyKey?: string | null;
}

/** `document`: the document, or null when there is none (or it was deleted). Needs read on its topic (see `permissionName`). */
export async function getDocument(context: ResolverContext, args: DocumentArgs): Promise<SyncDocument | null> {
  return (await context.services.documents.get(keyFor(context, 'read', args.service, args.id))) ?? null;
}

/**
 * `documents`: a page of a service's documents, by id; `after` is the previous page's end cursor.
 * At most `first` documents, and at most MAX_PAGE_DATA_BYTES of their data (`listPage`).
 * `withData`: whether the selection asks for the documents' data; without it, none is read.
 */
export async function listDocuments(
  context: ResolverContext,
  args: { service: string; first?: number | null; after?: string | null; withData?: boolean },
): Promise<DocumentPage> {
  const { scope, service } = keyFor(context, 'read', args.service, undefined);
  const first = args.first ?? DEFAULT_PAGE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw badUserInput('first', `first must be an integer from 1 to ${MAX_PAGE}`);
  }
  const after = args.after == null ? undefined : decodePageCursor(args.after);
  return listPage(context.services.documents, scope, service, { first, after, withData: args.withData ?? true });
}

/**
 * `createDocument`. A new document is a new stream in the log (its topic `sync.{service}.doc.{id}`,
 * and `sync.{service}.created` for a service's first): each costs the subject one of its new
 * streams (TOPIC_NEW_STREAMS_PER_MINUTE), as a `topicCursor` on a new name does — asked before
 * the write, so a refused create saves nothing.
 */
export async function createDocument(
  context: ResolverContext,
  args: { service: string; id?: string | null; data?: unknown; idempotencyKey?: string | null },
): Promise<SyncDocument> {
  const { principal, services } = context;
  const key = keyFor(context, 'write', args.service, args.id ?? `doc_${randomBytes(12).toString('base64url')}`, 'service');
  const data = jsonObject('data', args.data);
  return write(context, args, { mutation: 'create', sentId: args.id ?? undefined, body: data, expectedRevision: undefined }, {
    write: async () => {
      for (const topic of [`sync.${key.service}.created`, documentTopic(key.service, key.id)]) {
        await services.subjectLimits.head(principal, streamOf(key.scope, topic));
      }
      return services.documents.create(key, data);
    },
    // The same request: the data sent is the first one's.
    dataOf: () => Promise.resolve(data),
  });
}

export async function replaceDocument(context: ResolverContext, args: WriteArgs & { data?: unknown }): Promise<SyncDocument> {
  const key = keyFor(context, 'write', args.service, args.id);
  const data = jsonObject('data', args.data);
  const revision = expectedRevision(args);
  return write(context, args, { mutation: 'replace', sentId: args.id, body: data, expectedRevision: revision }, {
    write: () => context.services.documents.replace(key, data, revision),
    dataOf: () => Promise.resolve(data),
  });
}

export async function mergeDocument(context: ResolverContext, args: WriteArgs & { patch?: unknown }): Promise<SyncDocument> {
  const key = keyFor(context, 'write', args.service, args.id);
  const patch = jsonObject('patch', args.patch);
  const revision = expectedRevision(args);
  return write(context, args, { mutation: 'merge', sentId: args.id, body: patch, expectedRevision: revision }, {
    write: () => context.services.documents.merge(key, patch, revision),
    // What the merge made is not kept: the document's data now (the first answer's while nothing changed it since).
    dataOf: async () => (await context.services.documents.get(key))?.data ?? {},
  });
}

export async function deleteDocument(context: ResolverContext, args: WriteArgs): Promise<SyncDocument> {
  const key = keyFor(context, 'write', args.service, args.id);
  const revision = expectedRevision(args);
  return write(context, args, { mutation: 'delete', sentId: args.id, body: undefined, expectedRevision: revision }, {
    write: () => context.services.documents.delete(key, revision),
    // A deleted document's content is kept nowhere, the key's record included.
    dataOf: () => Promise.resolve({}),
  });
}

/** What makes a write the request it is, for its idempotency key (`writeFingerprint`). */
interface WriteRequest {
  readonly mutation: 'create' | 'replace' | 'merge' | 'delete';
  readonly sentId: string | undefined;
  readonly body: JsonObject | undefined;
  readonly expectedRevision: number | undefined;
}

/**
 * A valid write: counted in the subject's publishes (PUBLISH_RATE_PER_SECOND: each write publishes
 * its change), a retry under an idempotency key too (it costs a round trip), then made — once per
 * key when it has one (`keyed-writes.ts`).
 */
async function write(
  context: ResolverContext,
  args: { service: string; idempotencyKey?: string | null },
  request: WriteRequest,
  keyed: Pick<KeyedWrite, 'write' | 'dataOf'>,
): Promise<SyncDocument> {
  const { principal, services } = context;
  const idempotencyKey = args.idempotencyKey ?? undefined;
  if (idempotencyKey !== undefined && !isValidKey(idempotencyKey)) {
    throw badUserInput('idempotencyKey', `idempotencyKey must be 1–${MAX_KEY_LENGTH} printable ASCII characters without spaces`);
  }
  await services.subjectLimits.admitPublishes(principal);
  if (idempotencyKey === undefined) return keyed.write();
  return writeOnce(
    { keys: services.publishKeys, logger: services.logger },
    {
      ...keyed,
      keyId: keyId(scopeOf(principal), idempotencyKey),
      fingerprint: writeFingerprint(request.mutation, args.service, request.sentId, request.body, request.expectedRevision),
    },
  );
}

export function pageCursorOf(document: SyncDocument): string {
  return Buffer.from(document.id).toString('base64url');
}

function decodePageCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!DOCUMENT_ID.test(id)) throw badUserInput('after', 'after is not a cursor of this list');
  return id;
}

/**
 * Validates the names, before anything is read or written. The document's own topic
 * (`sync.{service}.doc.{id}`) must be a valid topic name too: a longer one would be refused only
 * when its first change is published, after the change was saved.
 */
function assertNames(service: string, id: string | undefined): void {
  if (!SERVICE.test(service)) {
    throw badUserInput('service', 'service must be 1–63 characters of lower-case letters, digits, _ and -, starting with a letter');
  }
  if (id === undefined) return;
  if (!DOCUMENT_ID.test(id)) throw badUserInput('id', 'id must be 1–128 characters of letters, digits and _ . : -');
  if (documentTopic(service, id).length > MAX_NAME_LENGTH) {
    const longest = MAX_NAME_LENGTH - documentTopic(service, '').length;
    throw badUserInput(
      'id',
      `The document's topic sync.{service}.doc.{id} may have at most ${MAX_NAME_LENGTH} characters: with this service, id may have at most ${longest}`,
    );
  }
}

/**
 * What a permission must cover: one document (`document`, its subscription, replace, merge,
 * delete), or the whole service (`documents`, and `createDocument`: a token for some documents
 * must not bring new ones into the service, whatever their id).
 */
type Reach = 'document' | 'service';

/**
 * The name the caller's `<prefix>.read` / `.write` must cover: the document's own topic
 * `sync.{service}.doc.{id}` — so `sync.{service}.doc.{id}.read` reads the document through
 * `document` as it does through `events(topic:)`, and `sync.{service}.read` (or `sync.read`),
 * a prefix of that topic, still covers every document of the service — or `sync.{service}`.
 */
function permissionName(service: string, id: string | undefined, reach: Reach): string {
  return reach === 'document' && id !== undefined ? documentTopic(service, id) : `sync.${service}`;
}

/** Validates the names and checks the caller's permission (see `permissionName`). */
function keyFor(context: ResolverContext, action: TopicAction, service: string, id: string, reach?: Reach): DocumentKey;
function keyFor(context: ResolverContext, action: TopicAction, service: string, id: undefined): Omit<DocumentKey, 'id'>;
function keyFor(context: ResolverContext, action: TopicAction, service: string, id: string | undefined, reach: Reach = 'document') {
  assertNames(service, id);
  const name = permissionName(service, id, reach);
  if (!canAccessTopic(context.principal, action, name)) {
    const alternative = name === `sync.${service}` ? '' : ` or "${name}.${action}"`;
    throw new TributaryError(ErrorCode.FORBIDDEN, `This needs the permission "sync.${service}.${action}"${alternative}`);
  }
  return { scope: scopeOf(context.principal), service, ...(id !== undefined && { id }) };
}

/**
 * A document's data or patch: a JSON object Postgres can store. Refused here, not where it is
 * written: behind the document cache that would be after the change was acknowledged (async) or
 * while the document waits for it (sync).
 */
function jsonObject(field: string, value: unknown): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badUserInput(field, `${field} must be a JSON object`);
  assertStorableJson(field, value);
  return value as JsonObject;
}

function expectedRevision(args: WriteArgs): number | undefined {
  const revision = args.expectedRevision ?? undefined;
  if (revision !== undefined && (!Number.isInteger(revision) || revision < 1)) {
    throw badUserInput('expectedRevision', 'expectedRevision must be a positive integer');
  }
  return revision;
}

/**
 * `document` subscription: the snapshot at revision R first (no data when the document does not
 * exist: R is 0, or its deletion's revision), then every change after R, with
 * no gap and no duplicate. The stream's head is taken before the snapshot is read, so every
 * change after the snapshot is in the stream after that head; changes the snapshot already
 * holds (revision ≤ R) are skipped for this subscriber. Revisions must then follow one by one:
 * a missing one (a change whose event could not be published, or events of two instances out of
 * order) ends the subscription with RESYNC_REQUIRED instead of a silent gap. Without read
 * permission on the document's topic (`sync.{service}.read` or `sync.{service}.doc.{id}.read`):
 * silent.
 */
export async function subscribeDocument(context: ResolverContext, args: DocumentArgs): Promise<DispatchTicket> {
  const { principal, services } = context;
  assertNames(args.service, args.id);
  const scope = scopeOf(principal);
  const stream = streamOf(scope, documentTopic(args.service, args.id));
  // The same name `document` checks, so a refreshed token keeps what a new subscription would get.
  const readableBy = (next: Principal) => canAccessTopic(next, 'read', permissionName(args.service, args.id, 'document'));
  if (!readableBy(principal)) {
    services.metrics.subscriptionsDenied.inc({ field: 'document' });
    services.logger.debug({ subject: principal.subject, app: scope.app, env: scope.env, tenant: scope.tenant, documentService: args.service, documentId: args.id }, 'subscription denied silently');
    return dispatchTicket({ stream, filter: undefined, after: undefined, denied: true, readableBy });
  }
  // Any id may be asked for: a stream new to the log costs the subject one of its new streams.
  const head = await services.subjectLimits.head(principal, stream);
  // A deleted document's snapshot has its deletion's revision: its re-creation is the next one.
  const { revision, document } = await services.documents.snapshot({ scope, service: args.service, id: args.id });
  const initial = documentSnapshot({
    scope,
    topic: stream.topic,
    cursor: head,
    payload: { service: args.service, documentId: args.id, revision, data: document?.data ?? null },
  });
  return dispatchTicket({
    stream,
    filter: undefined,
    after: head,
    denied: false,
    initial,
    admit: revisionGate(revision),
    readableBy,
  });
}

/** Admits a document's events in revision order after `start`: older ones skipped, a gap refused. */
function revisionGate(start: number): Admission {
  let last = start;
  return (event) => {
    const revision = event.metadata.revision ?? 0;
    if (revision <= last) return 'skip';
    if (revision !== last + 1) return 'resync';
    last = revision;
    return 'deliver';
  };
}
