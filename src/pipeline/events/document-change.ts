/**
 * Sync document events (source `sync`): one per saved change, on `sync.{service}.{operation}` and
 * on the document's own stream, plus the snapshot a `document` subscription starts with.
 *
 * Envelope: `type` is `sync.created | sync.updated | sync.deleted` (`sync.snapshot` for the
 * snapshot, which is never routed), `metadata.revision` the revision after the change,
 * `entity` the document. Payload (seed 000): `{ service, documentId, revision, data, diff? }` —
 * `data` is the document after the change (null once deleted), `diff` the RFC 6902 patch from the
 * previous revision (updates and deletes). `events(returnMode:)` may strip `data` or `diff`.
 */
import type { Operation as JsonPatchOperation } from 'rfc6902';
import type { RawEventInput, RealtimeEvent } from './envelope.ts';
import type { Scope } from '../scope.ts';
import { eventShapeError } from './event-shape-error.ts';
import type { JsonObject } from './json.ts';

export type DocumentOperation = 'created' | 'updated' | 'deleted';

/** The `type` of a document event; `sync.snapshot` only ever reaches a `document` subscriber. */
export type DocumentEventType = `sync.${DocumentOperation}` | 'sync.snapshot';

// A type alias, not an interface: it must be assignable to the envelope's JSON-object payload.
export type DocumentChangePayload = {
  readonly service: string;
  readonly documentId: string;
  readonly revision: number;
  /** The document after the change; null once deleted, or in a snapshot of a missing document. */
  readonly data?: JsonObject | null;
  /** RFC 6902 JSON Patch from the previous revision (updates and deletes). */
  readonly diff?: readonly JsonPatchOperation[];
};

export interface DocumentChangeInput {
  readonly scope: Scope;
  /** The ordering key of the document. */
  readonly entity: string;
  readonly operation: DocumentOperation;
  readonly payload: DocumentChangePayload;
  /** One id for the event on both topics, so a client that sees both knows they are one change. */
  readonly id: string;
}

/** The change as the router takes it, without its topic (it goes to two). */
export function documentChange(input: DocumentChangeInput): Omit<RawEventInput, 'topic'> {
  const { payload } = input;
  return {
    id: input.id,
    source: 'sync',
    type: `sync.${input.operation}`,
    scope: input.scope,
    entity: input.entity,
    revision: payload.revision,
    payload,
  };
}

/** The first message of a `document` subscription: the document at revision R (0: it does not exist). */
export function documentSnapshot(input: { scope: Scope; topic: string; cursor: string; payload: DocumentChangePayload }): RealtimeEvent {
  const { payload } = input;
  return {
    id: `snapshot_${payload.service}_${payload.documentId}_${payload.revision}`,
    topic: input.topic,
    source: 'sync',
    type: 'sync.snapshot',
    payload,
    metadata: { timestamp: Date.now(), scope: input.scope, revision: payload.revision },
    cursor: input.cursor,
  };
}

const TYPES: ReadonlySet<string> = new Set<DocumentEventType>(['sync.created', 'sync.updated', 'sync.deleted', 'sync.snapshot']);

/** The typed view of a document event; throws an internal EVENT_SHAPE error for anything else. */
export function readDocumentChange(event: RealtimeEvent): { readonly type: DocumentEventType; readonly payload: DocumentChangePayload } {
  if (event.source !== 'sync' || !TYPES.has(event.type)) throw eventShapeError('document', event, `not a document event (${event.source} ${event.type})`);
  const { service, documentId, revision, diff } = event.payload;
  if (typeof service !== 'string' || typeof documentId !== 'string') throw eventShapeError('document', event, 'service and documentId must be strings');
  if (!Number.isInteger(revision)) throw eventShapeError('document', event, 'revision must be an integer');
  if (diff !== undefined && !Array.isArray(diff)) throw eventShapeError('document', event, 'diff must be a JSON Patch array');
  return { type: event.type as DocumentEventType, payload: event.payload as unknown as DocumentChangePayload };
}
