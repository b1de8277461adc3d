import { applyReturnMode } from '../../pipeline/dispatch/return-mode.ts';
import type { RealtimeEvent } from '../../pipeline/events/envelope.ts';
import { readDocumentChange } from '../../pipeline/events/document-change.ts';
import type { DocumentPage, SyncDocument } from '../../pipeline/sync/documents.ts';
import * as resolvers from '../../resolvers/documents.ts';
import { builder } from '../builder.ts';
import { selectsField } from '../selection.ts';
import { ReturnMode } from './event.ts';

const Document = builder.objectRef<SyncDocument>('Document').implement({
  description: "A revisioned JSON document of a sync service. `id` is unique within its service only: a client cache should key documents by `service` and `id` together (Apollo's `keyFields: ['service', 'id']`, urql Graphcache's `keys`).",
  fields: (t) => ({
    service: t.exposeString('service', { description: 'The sync service it belongs to.' }),
    id: t.exposeID('id', { description: 'Its id, unique within its service.' }),
    revision: t.exposeInt('revision', { description: 'Starts at 1; every change adds one. Pass it as `expectedRevision`.' }),
    data: t.field({ type: 'JSON', description: 'Its content, a JSON object.', resolve: (document) => document.data }),
    createdAt: t.field({ type: 'DateTime', description: 'When it was created.', resolve: (document) => document.createdAt }),
    updatedAt: t.field({ type: 'DateTime', description: 'When it last changed.', resolve: (document) => document.updatedAt }),
  }),
});

const DocumentEdge = builder.objectRef<SyncDocument>('DocumentEdge').implement({
  description: 'One document of a `documents` page, with its cursor.',
  fields: (t) => ({
    cursor: t.string({ description: 'Pass as `after` for the documents after this one.', resolve: (document) => resolvers.pageCursorOf(document) }),
    node: t.field({ type: Document, description: 'The document.', resolve: (document) => document }),
  }),
});

const PageInfo = builder.objectRef<DocumentPage>('PageInfo').implement({
  description: 'Where a `documents` page ends, and whether more follow.',
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More documents follow: pass `endCursor` as `after` for them.' }),
    endCursor: t.string({
      nullable: true,
      description: "The page's last cursor, for `after`; null when the page is empty.",
      resolve: (page) => {
        const last = page.documents.at(-1);
        return last ? resolvers.pageCursorOf(last) : null;
      },
    }),
  }),
});

const DocumentConnection = builder.objectRef<DocumentPage>('DocumentConnection').implement({
  description: "A page of a service's documents, ordered by id (Relay style: `edges`, `pageInfo`).",
  fields: (t) => ({
    edges: t.field({ type: [DocumentEdge], description: 'The documents of the page, each with its cursor.', resolve: (page) => page.documents }),
    pageInfo: t.field({ type: PageInfo, description: 'Where the page ends, and whether more follow.', resolve: (page) => page }),
  }),
});

const serviceName = 'The sync service: 1–63 lower-case letters, digits, _ and -, starting with a letter (BAD_USER_INPUT otherwise).';
const expectedRevision = 'Fails with CONFLICT (and `extensions.currentRevision`) unless the document is at this revision.';
const documentId =
  'Up to 128 letters, digits and _ . : -, and short enough for the topic `sync.{service}.doc.{id}` to fit in 200 characters (any id of up to 127 does); a longer one is BAD_USER_INPUT.';
const documentData = 'A JSON object of at most 256 KiB (as JSON); a larger document is BAD_USER_INPUT.';
const needsDocumentWrite = 'Needs `sync.{service}.write`, or the document\'s own `sync.{service}.doc.{id}.write`.';
const writeLimits =
  "Counts as one of the caller's publishes (PUBLISH_RATE_PER_SECOND, per subject): RATE_LIMITED past it, with `extensions.retryAfterMs`. UNAVAILABLE with `extensions.saved: true` and `extensions.revision` when the change was saved but not finished (its event not published yet, or in sync durability not yet in the database): it goes out when it can; do not retry it as a new change. UNAVAILABLE with `extensions.saved: null` when whether it was saved could not be told (the document cache took the write but its answer was lost, and the cache could not be asked again in time): read the document, or retry with `expectedRevision`. UNAVAILABLE without `saved` saved nothing: retry.";
const idempotencyKey =
  "Makes a retry safe, as `publish`'s: a write with a key used before in the caller's scope (within EVENT_PUBLISH_KEY_TTL_SECONDS, 24 h by default) writes nothing and answers what the first try answered — its document's id, revision and times; its data: for create and replace the data sent, for merge the document's data now (the first answer's unless it changed since), for delete `{}` (a deleted document's content is kept nowhere) — or the first try's UNAVAILABLE with `saved: true`, or its `saved: null` (the key is kept: a retry under it never writes again). A first try that saved nothing (refused, or UNAVAILABLE without `saved`) frees its key. The same key with other arguments (or used by a publish) is CONFLICT; so is a retry while the first try is being made (`extensions.inFlight: true`: retry shortly). 1–255 printable ASCII characters without spaces (a UUID, say). Kept in Redis when there is one, otherwise in this process's memory (bounded; a restart forgets it); a retry under a key forgotten writes again — add `expectedRevision` to have that refused.";

builder.queryFields((t) => ({
  document: t.field({
    type: Document,
    nullable: true,
    description: "A document, or null when there is none. Needs `sync.{service}.read`, or the document's own `sync.{service}.doc.{id}.read`.",
    args: { service: t.arg.string({ required: true, description: serviceName }), id: t.arg.id({ required: true, description: documentId }) },
    resolve: (_root, args, context) => resolvers.getDocument(context, { service: args.service, id: String(args.id) }),
  }),
  documents: t.field({
    type: DocumentConnection,
    description: "A page of a service's documents ordered by id (the snapshot a reconnecting client refetches). A page that does not select `data` does not read it. Needs `sync.{service}.read`.",
    args: {
      service: t.arg.string({ required: true, description: serviceName }),
      first: t.arg.int({ description: 'At most this many documents: 1–500, default 50. A page also ends before 4 MiB of its documents\' `data` (as JSON): `pageInfo.hasNextPage` then says more follow.' }),
      after: t.arg.string({ description: "The previous page's `pageInfo.endCursor`, for the page after it; absent: the first page." }),
    },
    resolve: (_root, args, context, info) => resolvers.listDocuments(context, { ...args, withData: selectsField(info, 'data') }),
  }),
}));

builder.mutationFields((t) => ({
  createDocument: t.field({
    type: Document,
    nullable: true,
    description:
      `Creates a document at revision 1 (an id is generated when none is given; a document created again after its deletion continues its revisions). CONFLICT when the id exists. Needs \`sync.{service}.write\` (a per-document permission does not create). A new document is a new topic stream (\`sync.{service}.doc.{id}\`, and \`sync.{service}.created\` for a service's first): each counts in TOPIC_NEW_STREAMS_PER_MINUTE, as \`topicCursor\` on a new topic does (RATE_LIMITED past it, nothing created). ${writeLimits}`,
    args: {
      service: t.arg.string({ required: true, description: serviceName }),
      id: t.arg.id({ description: documentId }),
      data: t.arg({ type: 'JSON', required: true, description: documentData }),
      idempotencyKey: t.arg.string({ description: idempotencyKey }),
    },
    resolve: (_root, args, context) =>
      resolvers.createDocument(context, { ...args, id: args.id == null ? null : String(args.id) }),
  }),
  replaceDocument: t.field({
    type: Document,
    nullable: true,
    description: `Replaces the data of a document. ${needsDocumentWrite} ${writeLimits}`,
    args: {
      service: t.arg.string({ required: true, description: serviceName }),
      id: t.arg.id({ required: true, description: documentId }),
      data: t.arg({ type: 'JSON', required: true, description: documentData }),
      expectedRevision: t.arg.int({ description: expectedRevision }),
      idempotencyKey: t.arg.string({ description: idempotencyKey }),
    },
    resolve: (_root, args, context) => resolvers.replaceDocument(context, { ...args, id: String(args.id) }),
  }),
  mergeDocument: t.field({
    type: Document,
    nullable: true,
    description: `Deep-merges a JSON Merge Patch (RFC 7396) into a document: \`null\` removes a key. ${needsDocumentWrite} ${writeLimits}`,
    args: {
      service: t.arg.string({ required: true, description: serviceName }),
      id: t.arg.id({ required: true, description: documentId }),
      patch: t.arg({ type: 'JSON', required: true, description: 'The merged document must fit the limit of `data`; BAD_USER_INPUT on `patch` otherwise.' }),
      expectedRevision: t.arg.int({ description: expectedRevision }),
      idempotencyKey: t.arg.string({ description: idempotencyKey }),
    },
    resolve: (_root, args, context) => resolvers.mergeDocument(context, { ...args, id: String(args.id) }),
  }),
  deleteDocument: t.field({
    type: Document,
    nullable: true,
    description: `Deletes a document; returns it as it was, with the revision of the deletion. Only a tombstone stays (its revision and times, not its content). ${needsDocumentWrite} ${writeLimits}`,
    args: {
      service: t.arg.string({ required: true, description: serviceName }),
      id: t.arg.id({ required: true, description: documentId }),
      expectedRevision: t.arg.int({ description: expectedRevision }),
      idempotencyKey: t.arg.string({ description: idempotencyKey }),
    },
    resolve: (_root, args, context) => resolvers.deleteDocument(context, { ...args, id: String(args.id) }),
  }),
}));

const DocumentOperation = builder.enumType('DocumentOperation', {
  description: 'What a `document` subscription message tells.',
  values: {
    SNAPSHOT: {
      value: 'sync.snapshot',
      description:
        'The first message: the document as it is (no data when it does not exist — revision 0, or the revision of its deletion — or with returnMode MINIMAL).',
    },
    CREATED: {
      value: 'sync.created',
      description: 'Created, or created again after a deletion: no diff, and `data` is the new base (with returnMode DIFF too).',
    },
    UPDATED: { value: 'sync.updated', description: 'Replaced or merged: `diff` from the previous revision, and `data` as `returnMode` keeps it.' },
    DELETED: { value: 'sync.deleted', description: 'Deleted: `data` is null, `diff` from the previous revision. A re-creation comes as CREATED.' },
  } as const,
});

/** A document event as its fields read it: type and payload, read (and checked) once per render, and the cursor. */
type DocumentChangeView = ReturnType<typeof readDocumentChange> & { readonly cursor: string };

// Delivered by the dispatcher: fields follow the rule of `pipeline/dispatch/subscription-contract.ts`.
const DocumentChange = builder.objectRef<DocumentChangeView>('DocumentChange').implement({
  description: 'One message of a `document` subscription: a change, not an object to normalise (`service` and `id` name the document, unique together only; `revision` tells its changes apart).',
  fields: (t) => ({
    operation: t.field({ type: DocumentOperation, description: 'What happened.', resolve: (change) => change.type }),
    service: t.string({ description: "The document's service.", resolve: (change) => change.payload.service }),
    id: t.id({ description: "The document's id, unique within its service.", resolve: (change) => change.payload.documentId }),
    revision: t.int({
      description: 'The revision after the change; on SNAPSHOT, the revision now (0 for a document that never existed).',
      resolve: (change) => change.payload.revision,
    }),
    data: t.field({
      type: 'JSON',
      nullable: true,
      description:
        'The document after the change; null once deleted. With returnMode DIFF only SNAPSHOT and CREATED have it (the base the next diffs apply to); with MINIMAL none.',
      resolve: (change) => change.payload.data ?? null,
    }),
    diff: t.field({
      type: 'JSON',
      nullable: true,
      description: 'RFC 6902 JSON Patch from the previous revision (updates and deletes).',
      resolve: (change) => change.payload.diff ?? null,
    }),
    cursor: t.exposeString('cursor', { description: "A cursor of the document's stream, for `events(topic: \"sync.{service}.doc.{id}\", after: …)`." }),
  }),
});

builder.subscriptionField('document', (t) =>
  t.field({
    type: DocumentChange,
    description:
      'A live document: first its snapshot (revision R), then every change after R, in revision order, with nothing lost or repeated in between — even under concurrent writes. Needs `sync.{service}.read`, or the document\'s own `sync.{service}.doc.{id}.read`; without either the subscription stays silent.',
    args: {
      service: t.arg.string({ required: true, description: serviceName }),
      id: t.arg.id({ required: true, description: documentId }),
      returnMode: t.arg({ type: ReturnMode, defaultValue: 'FULL', description: 'How much of each change to deliver.' }),
    },
    subscribe: (_root, args, context) => resolvers.subscribeDocument(context, { service: args.service, id: String(args.id) }),
    resolve: (event: RealtimeEvent, args): DocumentChangeView => {
      const delivered = applyReturnMode(event, args.returnMode ?? 'FULL');
      return { ...readDocumentChange(delivered), cursor: delivered.cursor };
    },
  }),
);
