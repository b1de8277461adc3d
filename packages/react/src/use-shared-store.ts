/**
 * The one shape under `useRealtime`, `useDocument` and `useEvents`: a value shared per client and
 * key (`SharedRegistry`: one server subscription however many components, StrictMode's double
 * mount included), read through `useSyncExternalStore` — a lease while subscribed, the held
 * value's snapshot before that (a component mounted after the data arrived shows it at once),
 * `pending` on the server and before anything is held, `idle` while disabled.
 */
import { useCallback, useSyncExternalStore } from 'react';
import type { TributaryClient } from '@tributary/client';
import { registryFor, type Shared, type SharedRegistry } from './shared-registry.ts';

/** What a shared value exposes to React. */
export interface SnapshotSource<S> {
  subscribe(listener: () => void): () => void;
  getSnapshot(): S;
}

export interface SharedStoreOptions<T, S> {
  readonly registries: WeakMap<TributaryClient, SharedRegistry<T>>;
  readonly client: TributaryClient;
  /** Stands for every argument `open` uses: another key is another shared value. */
  readonly key: string;
  readonly enabled: boolean;
  /** Creates the shared value (its subscription) when no component holds one for the key. */
  readonly open: () => Shared<T>;
  readonly source: (value: T) => SnapshotSource<S>;
  /** Runs for as long as the component holds a lease (its callbacks); returns the undo. */
  readonly attach?: (value: T) => () => void;
  readonly pending: S;
  readonly idle: S;
}

export function useSharedStore<T, S>(options: SharedStoreOptions<T, S>): S {
  const { registries, client, key, enabled } = options;
  const subscribe = useCallback(
    (listener: () => void) => {
      if (!enabled) return () => {};
      const lease = registryFor(registries, client).acquire(key, options.open);
      const detach = options.attach?.(lease.value);
      const unsubscribe = options.source(lease.value).subscribe(listener);
      return () => {
        unsubscribe();
        detach?.();
        lease.release();
      };
    },
    // `open`, `source` and `attach` are fixed by the key (their arguments) and by refs (the callbacks).
    [registries, client, key, enabled],
  );
  const getSnapshot = useCallback(() => {
    if (!enabled) return options.idle;
    const held = registryFor(registries, client).peek(key);
    return held === undefined ? options.pending : options.source(held).getSnapshot();
  }, [registries, client, key, enabled]);
  const getServerSnapshot = useCallback(() => (enabled ? options.pending : options.idle), [enabled]);
  return useSyncExternalStore(subscribe, getSnapshot, getServerSnapshot);
}
