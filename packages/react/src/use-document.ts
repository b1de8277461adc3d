/**
 * `useDocument(service, id)`: a live sync document — its snapshot, then the document after every
 * change (revisions never go back; on a new socket the client reads a fresh snapshot). Shared per
 * client, service and id like `useRealtime`: one server subscription however many components show it.
 * A new login of another user on the client drops the document (`loading` again) until the new
 * user's snapshot comes — which never does for a document they may not read.
 *
 * The result also carries the document's writes, bound to its service and id (the client's
 * `createDocument`, `replaceDocument`, `mergeDocument`, `deleteDocument`, `updateDocument`): what
 * they write comes back through the subscription, like anyone's change. The same functions while
 * service and id stay — safe in an effect's or a callback's dependencies.
 *
 *   const { data, revision, merge, update } = useDocument('boards', id);
 *   <button onClick={() => merge({ done: true }, { expectedRevision: revision })}>Done</button>
 *   <button onClick={() => update((board) => ({ ...board, votes: board.votes + 1 }))}>+1</button>
 */
import { useMemo } from 'react';
import {
  isPermissionRevoked,
  type DocumentData,
  type DocumentUpdate,
  type LiveDocument,
  type StoredDocument,
  type TributaryClient,
  type UpdateDocumentOptions,
  type WriteDocumentOptions,
} from '@tributary/client';
import { ExternalStore } from './external-store.ts';
import { useTributaryClient } from './provider.ts';
import type { Shared, SharedRegistry } from './shared-registry.ts';
import { useSharedStore } from './use-shared-store.ts';

export interface UseDocumentOptions {
  /** False: no subscription; `status` is `idle`. @default true */
  readonly enabled?: boolean;
}

/** The document's writes, bound to its service and id (they reject as the client's do: CONFLICT, FORBIDDEN…). */
export interface DocumentMutations {
  /** Creates the document with this id (CONFLICT when it exists): `client.createDocument`. */
  readonly create: <T extends object = DocumentData>(data: T, options?: { readonly idempotencyKey?: string }) => Promise<StoredDocument<T>>;
  /** Replaces its data; pass `expectedRevision: revision` to be refused (CONFLICT) if it changed since shown. */
  readonly replace: <T extends object = DocumentData>(data: T, options?: WriteDocumentOptions) => Promise<StoredDocument<T>>;
  /** Deep-merges a JSON Merge Patch (`null` removes a key). */
  readonly merge: <T extends object = DocumentData>(patch: DocumentData, options?: WriteDocumentOptions) => Promise<StoredDocument<T>>;
  /** Deletes it. */
  readonly remove: (options?: WriteDocumentOptions) => Promise<StoredDocument>;
  /** Reads, applies `update` and writes at the revision read, again after a CONFLICT: `client.updateDocument`. */
  readonly update: <T extends object = DocumentData>(update: DocumentUpdate<T>, options?: UpdateDocumentOptions) => Promise<StoredDocument<T>>;
}

/** What the subscription shows (the shared store's value); `T`: the data type you expect (your promise, not checked). */
export interface DocumentState<T = unknown> {
  /** The document as last delivered; undefined before the first message. */
  readonly document: LiveDocument<T> | undefined;
  /** Its data; null while it does not exist (or after its deletion), undefined before the first message. */
  readonly data: T | null | undefined;
  /** 0 while the document does not exist; undefined before the first message. */
  readonly revision: number | undefined;
  /** `loading` until the first message (and again after a new login), `ready` after, `error` when the subscription stopped (FORBIDDEN…). */
  readonly status: 'idle' | 'loading' | 'ready' | 'error';
  /**
   * Why it stopped (`status: 'error'`); or, with `loading` or `ready`, why it is not served now
   * while the client retries — a refusal such as RATE_LIMITED, or the connection `unauthorized`
   * (a SessionEndedError with its close code and the server's `reason`) — null again once it is.
   */
  readonly error: Error | null;
}

export interface UseDocumentResult<T = unknown> extends DocumentState<T>, DocumentMutations {}

const registries = new WeakMap<TributaryClient, SharedRegistry<ExternalStore<DocumentState>>>();

const LOADING: DocumentState = Object.freeze({ document: undefined, data: undefined, revision: undefined, status: 'loading', error: null });
const IDLE: DocumentState = Object.freeze({ ...LOADING, status: 'idle' });

function openShared(client: TributaryClient, service: string, id: string): Shared<ExternalStore<DocumentState>> {
  const store = new ExternalStore<DocumentState>(LOADING);
  const subscription = client.subscribeDocument(service, id, {
    onDocument: (document) => store.set({ document, data: document.data, revision: document.revision, status: 'ready', error: null }),
    onError: (error) => {
      const reason = error instanceof Error ? error : new Error(String(error));
      // A refreshed token that may no longer read the document: it goes, as after a new login.
      store.update((current) => (isPermissionRevoked(error) ? { ...LOADING, status: 'error', error: reason } : { ...current, status: 'error', error: reason }));
    },
    onRetry: (error) => store.update((current) => ({ ...current, error })),
    onResume: () => store.update((current) => (current.error === null ? current : { ...current, error: null })),
    // The document was the previous user's: gone. A stopped subscription keeps its error.
    onReset: () => store.update((current) => (current.status === 'error' ? { ...LOADING, status: 'error', error: current.error } : LOADING)),
  });
  return { value: store, dispose: () => subscription.close() };
}

/** `T`: the document's data type you expect (`useDocument<Board>('boards', id)`), your promise, not checked. */
export function useDocument<T = unknown>(service: string, id: string, options: UseDocumentOptions = {}): UseDocumentResult<T> {
  const client = useTributaryClient();
  const enabled = options.enabled ?? true;
  const key = JSON.stringify([service, id]);

  const state = useSharedStore({
    registries,
    client,
    key,
    enabled,
    open: () => openShared(client, service, id),
    source: (store) => store,
    pending: LOADING,
    idle: IDLE,
  });
  const mutations = useMemo(() => documentMutations(client, service, id), [client, service, id]);
  return useMemo(() => ({ ...(state as DocumentState<T>), ...mutations }), [state, mutations]);
}

function documentMutations(client: TributaryClient, service: string, id: string): DocumentMutations {
  return {
    create: (data, options = {}) => client.createDocument(service, data, { ...options, id }),
    replace: (data, options) => client.replaceDocument(service, id, data, options),
    merge: (patch, options) => client.mergeDocument(service, id, patch, options),
    remove: (options) => client.deleteDocument(service, id, options),
    update: (update, options) => client.updateDocument(service, id, update, options),
  };
}
