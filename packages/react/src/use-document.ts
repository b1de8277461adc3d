/**
 * `useDocument(service, id)`: a live sync document — its snapshot, then the document after every
 * change (revisions never go back; on a new socket the client reads a fresh snapshot). Shared per
 * client, service and id like `useRealtime`: one server subscription however many components show it.
 * A new login of another user on the client drops the document (`loading` again) until the new
 * user's snapshot comes — which never does for a document they may not read.
 */
import { isPermissionRevoked, type LiveDocument, type TributaryClient } from '@tributary/client';
import { ExternalStore } from './external-store.ts';
import { useTributaryClient } from './provider.ts';
import type { Shared, SharedRegistry } from './shared-registry.ts';
import { useSharedStore } from './use-shared-store.ts';

export interface UseDocumentOptions {
  /** False: no subscription; `status` is `idle`. @default true */
  readonly enabled?: boolean;
}

export interface UseDocumentResult {
  /** The document as last delivered; undefined before the first message. */
  readonly document: LiveDocument | undefined;
  /** Its data; null while it does not exist (or after its deletion), undefined before the first message. */
  readonly data: unknown;
  /** 0 while the document does not exist; undefined before the first message. */
  readonly revision: number | undefined;
  /** `loading` until the first message (and again after a new login), `ready` after, `error` when the subscription stopped (FORBIDDEN…). */
  readonly status: 'idle' | 'loading' | 'ready' | 'error';
  /**
   * Why it stopped (`status: 'error'`); or, with `loading` or `ready`, why it is not served now
   * while the client retries — a refusal such as RATE_LIMITED, or the connection `unauthorized`
   * (a SessionEndedError with its close code) — null again once it is.
   */
  readonly error: Error | null;
}

const registries = new WeakMap<TributaryClient, SharedRegistry<ExternalStore<UseDocumentResult>>>();

const LOADING: UseDocumentResult = Object.freeze({ document: undefined, data: undefined, revision: undefined, status: 'loading', error: null });
const IDLE: UseDocumentResult = Object.freeze({ ...LOADING, status: 'idle' });

function openShared(client: TributaryClient, service: string, id: string): Shared<ExternalStore<UseDocumentResult>> {
  const store = new ExternalStore<UseDocumentResult>(LOADING);
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

export function useDocument(service: string, id: string, options: UseDocumentOptions = {}): UseDocumentResult {
  const client = useTributaryClient();
  const enabled = options.enabled ?? true;
  const key = JSON.stringify([service, id]);

  return useSharedStore({
    registries,
    client,
    key,
    enabled,
    open: () => openShared(client, service, id),
    source: (store) => store,
    pending: LOADING,
    idle: IDLE,
  });
}
