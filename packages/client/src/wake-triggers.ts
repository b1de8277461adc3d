/**
 * Browser signals that a reconnect should not wait for its backoff: the network is back
 * (`online`) or the page became visible again (a laptop waking up, a tab brought to the front —
 * when zombie sockets are most common). In Node none of these exist and nothing is installed.
 */

interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

interface BrowserGlobals {
  readonly window?: EventTargetLike;
  readonly document?: EventTargetLike & { readonly visibilityState?: string };
  readonly navigator?: { readonly onLine?: boolean };
}

const browser = globalThis as BrowserGlobals;

/** False only when a browser says it has no network. */
export function isOnline(): boolean {
  return browser.navigator?.onLine !== false;
}

export interface WakeHandlers {
  /** The network came back or the page became visible. */
  readonly wake: () => void;
  /** The browser lost the network. */
  readonly offline: () => void;
}

/** Installs the listeners; returns their removal. */
export function installWakeTriggers(handlers: WakeHandlers): () => void {
  const { window, document } = browser;
  if (window === undefined || typeof window.addEventListener !== 'function') return () => {};
  const onOnline = () => handlers.wake();
  const onOffline = () => handlers.offline();
  const onVisibility = () => {
    if (document?.visibilityState === 'visible') handlers.wake();
  };
  window.addEventListener('online', onOnline);
  window.addEventListener('offline', onOffline);
  document?.addEventListener('visibilitychange', onVisibility);
  return () => {
    window.removeEventListener('online', onOnline);
    window.removeEventListener('offline', onOffline);
    document?.removeEventListener('visibilitychange', onVisibility);
  };
}
