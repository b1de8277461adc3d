/**
 * `useChannel(name, onMessage)`: membership of a channel (typing, presence, cursors) while the
 * component is mounted — one membership per client and channel however many components use it,
 * joined again by the client on every new socket. At most once: what is broadcast while the
 * client has no socket is not delivered later. Broadcast with `useTributaryClient().broadcast(…)`.
 */
import { useInsertionEffect, useRef } from 'react';
import type { ChannelMessage, TributaryClient } from '@tributary/client';
import { ExternalStore } from './external-store.ts';
import { callEach } from './fan-out.ts';
import { useTributaryClient } from './provider.ts';
import type { Shared, SharedRegistry } from './shared-registry.ts';
import { useServerRender } from './server-render.ts';
import { useSharedStore } from './use-shared-store.ts';

export interface UseChannelResult {
  /** `joined` while a member (also while the client reconnects), `error` once refused for good (FORBIDDEN…), `idle` when disabled. */
  readonly status: 'idle' | 'joined' | 'error';
  /** Why it stopped (`error`), or why it is not served now while the client retries (UNAVAILABLE…); null otherwise. */
  readonly error: Error | null;
}

type OnMessage<T> = (message: ChannelMessage<T>) => void;

interface SharedChannel {
  readonly store: ExternalStore<UseChannelResult>;
  readonly callbacks: Set<{ readonly current: OnMessage<unknown> }>;
}

const registries = new WeakMap<TributaryClient, SharedRegistry<SharedChannel>>();
const JOINED: UseChannelResult = Object.freeze({ status: 'joined', error: null });
const IDLE: UseChannelResult = Object.freeze({ status: 'idle', error: null });

function openShared(client: TributaryClient, name: string): Shared<SharedChannel> {
  const store = new ExternalStore<UseChannelResult>(JOINED);
  const callbacks = new Set<{ readonly current: OnMessage<unknown> }>();
  const membership = client.joinChannel(name, {
    onMessage: (message) => callEach(callbacks, (current) => current(message)),
    onError: (error) => store.update(() => ({ status: 'error', error: error instanceof Error ? error : new Error(String(error)) })),
    onRetry: (error) => store.update((current) => ({ ...current, error })),
    onResume: () => store.update((current) => (current.error === null ? current : { ...current, error: null })),
  });
  return { value: { store, callbacks }, dispose: () => membership.close() };
}

/** `onMessage`: the latest function is called (no rejoin when it changes). `enabled: false` leaves the channel. */
export function useChannel<T = unknown>(name: string, onMessage: OnMessage<T>, options: { readonly enabled?: boolean } = {}): UseChannelResult {
  const client = useTributaryClient();
  const callback = useRef(onMessage as OnMessage<unknown>);
  useInsertionEffect(() => {
    callback.current = onMessage as OnMessage<unknown>;
  });
  // `joined` is the shared store's state before it holds anything; on the server nothing is joined
  // (effects never run there): `idle` says what is so.
  const serverRender = useServerRender();
  const result = useSharedStore({
    registries,
    client,
    key: name,
    enabled: options.enabled ?? true,
    open: () => openShared(client, name),
    source: (shared) => shared.store,
    attach: (shared) => {
      shared.callbacks.add(callback);
      return () => shared.callbacks.delete(callback);
    },
    pending: JOINED,
    idle: IDLE,
  });
  return serverRender ? IDLE : result;
}
